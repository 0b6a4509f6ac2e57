//! The full-text search index, derived from the store and always rebuildable (the only module that imports
//! tantivy).
//!
//! One document per current tool. Why it is shaped so:
//! - The name is indexed three ways: lowercased whole (an exact name match ranks first), split into words
//!   (`deleteRepo` → `delete repo`) and stemmed, then title, description, annotation flags and the server
//!   name, with boosts that rank a name match above a description match.
//! - Category and risk are indexed u64 fast fields: filters are exact term sets that do not score, and a
//!   query without words lists tools by risk straight from the fast field.
//! - Everything a search result shows (including evidence) is stored in the index, so a search never
//!   touches SQLite.
//! - Each commit carries a payload stamp (`v<schema>:<catalogue id>:<generation>`); the catalogue compares it
//!   with the store to find an index that is stale, half-written or from another catalogue, and rebuilds it.
//! - User query text goes through the lenient parser: `"delete AND OR ("` searches for what it can and never
//!   fails. Indexed text is bounded, so a 1 MB description costs at most [`MAX_INDEXED_CHARS`].

mod words;

use std::path::{Path, PathBuf};

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use crate::model::{Category, Evidence, Risk, ToolRecord};

pub(crate) use words::split_words;

/// Bump when the fields change: an index with another version is rebuilt.
const SCHEMA_VERSION: u32 = 2;
/// Longest description and title text indexed and stored per tool.
pub const MAX_INDEXED_CHARS: usize = 16 * 1024;
/// Longest name or server name indexed as one term (tantivy terms are bounded).
const MAX_TERM_BYTES: usize = 512;
const SNIPPET_CHARS: usize = 160;
const RAW_LOWER: &str = "tw_raw_lower";
const STEMMED: &str = "en_stem";

/// Errors of the index. A corrupt index is not an error the user sees: the catalogue rebuilds it.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index {path}: {source}")]
    Tantivy { path: PathBuf, source: tantivy::TantivyError },
    #[error("search index {path}: another toolwarden process is writing it; try again when it has finished")]
    Busy { path: PathBuf },
    #[error("search index {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What to search for. Empty text with filters lists tools by risk, most severe first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub text: Option<String>,
    /// Any of these categories (all when empty).
    pub categories: Vec<Category>,
    /// Any of these risk levels (all when empty).
    pub risks: Vec<Risk>,
    pub min_risk: Option<Risk>,
    pub server: Option<String>,
    pub limit: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub server: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub category: Category,
    pub risk: Risk,
    pub confidence: f64,
    /// Relevance (BM25 with boosts); 0 when the query has no words and results are ordered by risk.
    pub score: f32,
    pub description: String,
    /// The best matching part of the description, matches marked `**like this**`.
    pub snippet: String,
    pub evidence: Vec<Evidence>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    /// The server name as one exact term (bounded), for filters and deletes.
    server: Field,
    /// The whole server name, for display.
    server_name: Field,
    server_text: Field,
    name: Field,
    name_raw: Field,
    name_words: Field,
    title: Field,
    description: Field,
    annotations: Field,
    category: Field,
    risk: Field,
    confidence: Field,
    evidence: Field,
    fingerprint: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let stemmed = |stored: bool| {
        let opts = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(STEMMED)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored { opts.set_stored() } else { opts }
    };
    let raw_lower = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(RAW_LOWER).set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        server: b.add_text_field("server", STRING | FAST),
        server_name: b.add_text_field("server_name", STORED),
        server_text: b.add_text_field("server_text", stemmed(false)),
        name: b.add_text_field("name", STORED),
        name_raw: b.add_text_field("name_raw", raw_lower),
        name_words: b.add_text_field("name_words", stemmed(false)),
        title: b.add_text_field("title", stemmed(true)),
        description: b.add_text_field("description", stemmed(true)),
        annotations: b.add_text_field("annotations", stemmed(false)),
        category: b.add_u64_field("category", INDEXED | FAST | STORED),
        risk: b.add_u64_field("risk", INDEXED | FAST | STORED),
        confidence: b.add_f64_field("confidence", STORED),
        evidence: b.add_text_field("evidence", STORED),
        fingerprint: b.add_text_field("fingerprint", STORED),
    };
    (b.build(), fields)
}

/// How the index was found when opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// An existing index.
    Existing,
    /// There was none: a new empty one was created.
    Created,
    /// The directory held something unreadable or of another schema: it was replaced by an empty index.
    Replaced,
}

/// How often an existing index that fails to open is tried before it is replaced.
const OPEN_ATTEMPTS: usize = 5;

/// The open index: a reader always, a writer only while writing.
pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    fields: Fields,
    reader: IndexReader,
    writer: Option<IndexWriter<TantivyDocument>>,
    /// The opstamp of the commit the reader last loaded through [`SearchIndex::reload`] (`u64::MAX`: none).
    loaded: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Open the index in `dir`, creating it, or replacing whatever unreadable thing is there (the index is
    /// derived data: the caller must then rebuild it from the store).
    pub fn open(dir: &Path) -> Result<(SearchIndex, Opened), IndexError> {
        let (schema, fields) = schema();
        let io = |source| IndexError::Io { path: dir.to_path_buf(), source };
        let existing = dir.join("meta.json").exists();
        if existing {
            // Another process may be committing (and collecting the segments of the previous commit) while we
            // read: a failure to open is retried before the index counts as unreadable, or we would delete an
            // index a concurrent import is writing.
            for attempt in 0..OPEN_ATTEMPTS {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                match Index::open_in_dir(dir) {
                    Ok(index) if index.schema() == schema => {
                        if let Ok(opened) = SearchIndex::from_index(dir, index, fields) {
                            return Ok((opened, Opened::Existing));
                        }
                    }
                    // Another schema is not transient: replace it at once.
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
            tracing::debug!("replacing unreadable search index at {}", dir.display());
            std::fs::remove_dir_all(dir).map_err(io)?;
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let index = match Index::create_in_dir(dir, schema.clone()) {
            Ok(index) => index,
            // Another process created it between our look and our create: use theirs.
            Err(tantivy::TantivyError::IndexAlreadyExists) => {
                Index::open_in_dir(dir).ok().filter(|index| index.schema() == schema).ok_or_else(|| {
                    IndexError::Tantivy { path: dir.into(), source: tantivy::TantivyError::IndexAlreadyExists }
                })?
            }
            Err(source) => return Err(IndexError::Tantivy { path: dir.into(), source }),
        };
        let opened = SearchIndex::from_index(dir, index, fields)?;
        Ok((opened, if existing { Opened::Replaced } else { Opened::Created }))
    }

    fn from_index(dir: &Path, index: Index, fields: Fields) -> Result<SearchIndex, IndexError> {
        index
            .tokenizers()
            .register(RAW_LOWER, TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).build());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|source| IndexError::Tantivy { path: dir.into(), source })?;
        Ok(SearchIndex {
            dir: dir.to_path_buf(),
            index,
            fields,
            reader,
            writer: None,
            loaded: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    fn err(&self, source: tantivy::TantivyError) -> IndexError {
        match source {
            tantivy::TantivyError::LockFailure(tantivy::directory::error::LockError::LockBusy, _) => {
                IndexError::Busy { path: self.dir.clone() }
            }
            source => IndexError::Tantivy { path: self.dir.clone(), source },
        }
    }

    /// The stamp of the last commit, or `None` for a new index.
    pub fn stamp(&self) -> Option<String> {
        let payload = self.index.load_metas().ok()?.payload?;
        payload.strip_prefix(&format!("v{SCHEMA_VERSION}:")).map(str::to_string)
    }

    /// Number of documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    fn writer(&mut self) -> Result<&mut IndexWriter<TantivyDocument>, IndexError> {
        if self.writer.is_none() {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 2);
            let writer = self.index.writer_with_num_threads(threads, threads * 48_000_000).map_err(|e| self.err(e))?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("writer was just created"))
    }

    /// Start writing: takes the index's write lock (fails with `Busy` when another process has it).
    pub fn begin(&mut self) -> Result<(), IndexError> {
        self.writer().map(|_| ())
    }

    /// Remove every document (for a rebuild).
    pub fn clear(&mut self) -> Result<(), IndexError> {
        let path = self.dir.clone();
        self.writer()?.delete_all_documents().map_err(|source| IndexError::Tantivy { path, source })?;
        Ok(())
    }

    /// Remove the documents of one server (before adding its current tools again).
    pub fn remove_server(&mut self, server: &str) -> Result<(), IndexError> {
        let term = Term::from_field_text(self.fields.server, bounded(server, MAX_TERM_BYTES));
        self.writer()?.delete_term(term);
        Ok(())
    }

    /// Add one tool.
    pub fn add(&mut self, record: &ToolRecord) -> Result<(), IndexError> {
        let doc = self.document(record);
        let path = self.dir.clone();
        self.writer()?.add_document(doc).map_err(|source| IndexError::Tantivy { path, source })?;
        Ok(())
    }

    /// Make everything written visible, stamped with `stamp`.
    pub fn commit(&mut self, stamp: &str) -> Result<(), IndexError> {
        let path = self.dir.clone();
        let tantivy = |source| IndexError::Tantivy { path: path.clone(), source };
        let writer = self.writer()?;
        let mut prepared = writer.prepare_commit().map_err(tantivy)?;
        prepared.set_payload(&format!("v{SCHEMA_VERSION}:{stamp}"));
        prepared.commit().map_err(tantivy)?;
        self.reader.reload().map_err(tantivy)?;
        Ok(())
    }

    /// Release the write lock, letting background merges finish so the next search sees few segments.
    pub fn finish(&mut self) -> Result<(), IndexError> {
        if let Some(writer) = self.writer.take() {
            writer.wait_merging_threads().map_err(|source| IndexError::Tantivy { path: self.dir.clone(), source })?;
            self.reader.reload().map_err(|source| IndexError::Tantivy { path: self.dir.clone(), source })?;
        }
        Ok(())
    }

    fn document(&self, r: &ToolRecord) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        let name = bounded(&r.tool.name, MAX_TERM_BYTES);
        doc.add_text(f.server, bounded(&r.server, MAX_TERM_BYTES));
        doc.add_text(f.server_name, &r.server);
        doc.add_text(f.server_text, split_words(bounded(&r.server, MAX_TERM_BYTES)).join(" "));
        doc.add_text(f.name, &r.tool.name);
        doc.add_text(f.name_raw, name);
        doc.add_text(f.name_words, split_words(name).join(" "));
        if let Some(title) = r.tool.display_title() {
            doc.add_text(f.title, bounded(&title, MAX_INDEXED_CHARS));
        }
        doc.add_text(f.description, bounded(r.tool.description.as_deref().unwrap_or(""), MAX_INDEXED_CHARS));
        let a = r.tool.annotations();
        let flags = [
            (a.read_only, "readonly read only"),
            (a.destructive, "destructive"),
            (a.idempotent, "idempotent"),
            (a.open_world, "openworld open world"),
        ];
        let flags: Vec<&str> = flags.iter().filter(|(v, _)| *v == Some(true)).map(|(_, w)| *w).collect();
        doc.add_text(f.annotations, flags.join(" "));
        let c = &r.classification;
        doc.add_u64(f.category, category_code(c.category));
        doc.add_u64(f.risk, u64::from(c.risk.rank()));
        doc.add_f64(f.confidence, c.confidence);
        doc.add_text(f.evidence, serde_json::to_string(&c.evidence).unwrap_or_else(|_| "[]".into()));
        doc.add_text(f.fingerprint, &r.fingerprint);
        doc
    }

    /// Search. Never fails on what the user typed; fails only when the index cannot be read.
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, IndexError> {
        let tantivy = |source| IndexError::Tantivy { path: self.dir.clone(), source };
        let searcher = self.reader.searcher();
        let limit = q.limit.min(searcher.num_docs() as usize);
        let Some(filters) = self.filters(q) else { return Ok(Vec::new()) };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let text_query = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|text| self.parse(text));
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = filters;
        let mut hits = Vec::new();
        match &text_query {
            Some(text) => {
                clauses.push((Occur::Must, text.box_clone()));
                let query = BooleanQuery::new(clauses);
                let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score()).map_err(tantivy)?;
                let mut snippets =
                    SnippetGenerator::create(&searcher, text.as_ref(), self.fields.description).map_err(tantivy)?;
                snippets.set_max_num_chars(SNIPPET_CHARS);
                for (score, address) in top {
                    hits.push(self.hit(&searcher, address, score, Some(&snippets))?);
                }
            }
            None => {
                clauses.push((Occur::Must, Box::new(AllQuery)));
                let query = BooleanQuery::new(clauses);
                let collector = TopDocs::with_limit(limit).order_by_fast_field::<u64>("risk", Order::Desc);
                let top = searcher.search(&query, &collector).map_err(tantivy)?;
                for (_, address) in top {
                    hits.push(self.hit(&searcher, address, 0.0, None)?);
                }
                hits.sort_by(|a, b| b.risk.cmp(&a.risk).then_with(|| (&a.server, &a.name).cmp(&(&b.server, &b.name))));
            }
        }
        Ok(hits)
    }

    /// How many tools match `q`, and how they spread over risk, category and server (the `max_servers` servers
    /// with most matches). Each dimension is counted with the query's other filters but not its own, so a
    /// facet says how many results picking that value gives.
    pub fn facets(&self, q: &SearchQuery, max_servers: usize) -> Result<Facets, IndexError> {
        let tantivy = |source| IndexError::Tantivy { path: self.dir.clone(), source };
        let searcher = self.reader.searcher();
        let count = |q: &SearchQuery, dims: Vec<Dim>| -> Result<DimFruit, IndexError> {
            let n = dims.len();
            let Some(query) = self.query_for(q) else { return Ok((0, vec![Vec::new(); n])) };
            searcher.search(query.as_ref(), &DimCount(dims)).map_err(tantivy)
        };
        // One pass counts the matches and every dimension the query does not filter on (on the front page,
        // all three); a dimension with a filter of its own is counted in a pass without that filter.
        let own = [
            (Dim::Risk, !q.risks.is_empty() || q.min_risk.is_some()),
            (Dim::Category, !q.categories.is_empty()),
            (Dim::Server, q.server.is_some()),
        ];
        let shared: Vec<Dim> = own.iter().filter(|(_, filtered)| !filtered).map(|(d, _)| *d).collect();
        let (total, counts) = count(q, shared.clone())?;
        let mut by_dim: Vec<(Dim, Vec<(String, usize)>)> = shared.into_iter().zip(counts).collect();
        for (dim, filtered) in own {
            if !filtered {
                continue;
            }
            let without = match dim {
                Dim::Risk => SearchQuery { risks: Vec::new(), min_risk: None, ..q.clone() },
                Dim::Category => SearchQuery { categories: Vec::new(), ..q.clone() },
                Dim::Server => SearchQuery { server: None, ..q.clone() },
            };
            let (_, mut counts) = count(&without, vec![dim])?;
            by_dim.push((dim, counts.pop().unwrap_or_default()));
        }
        let mut take = |want: Dim| {
            by_dim.iter().position(|(d, _)| *d == want).map(|i| by_dim.swap_remove(i).1).unwrap_or_default()
        };
        let pick =
            |counts: &[(String, usize)], code: String| counts.iter().find(|(k, _)| *k == code).map_or(0, |(_, n)| *n);
        let risks = take(Dim::Risk);
        let risk = Risk::ALL.iter().map(|r| (*r, pick(&risks, r.rank().to_string()))).collect();
        let categories = take(Dim::Category);
        let category = Category::ALL.iter().map(|c| (*c, pick(&categories, category_code(*c).to_string()))).collect();
        let mut server = take(Dim::Server);
        server.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let servers = server.len();
        server.truncate(max_servers);
        Ok(Facets { total, risk, category, server, servers })
    }

    /// The whole query for `q` (its words and filters), or `None` when no tool can match.
    fn query_for(&self, q: &SearchQuery) -> Option<Box<dyn Query>> {
        let mut clauses = self.filters(q)?;
        match q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => clauses.push((Occur::Must, self.parse(text))),
            None => clauses.push((Occur::Must, Box::new(AllQuery))),
        }
        Some(Box::new(BooleanQuery::new(clauses)))
    }

    /// Make a long-lived reader see the latest commit (another process may have written the index). Reopening
    /// the segments costs tens of milliseconds at 250k tools, so it is done only when the commit on disk is
    /// not the one last loaded.
    pub fn reload(&self) -> Result<(), IndexError> {
        use std::sync::atomic::Ordering;
        let tantivy = |source| IndexError::Tantivy { path: self.dir.clone(), source };
        let opstamp = self.index.load_metas().map_err(tantivy)?.opstamp;
        if self.loaded.load(Ordering::Relaxed) == opstamp {
            return Ok(());
        }
        self.reader.reload().map_err(tantivy)?;
        self.loaded.store(opstamp, Ordering::Relaxed);
        Ok(())
    }

    /// The lenient parse of the user's words over the text fields, names weighted most.
    fn parse(&self, text: &str) -> Box<dyn Query> {
        let f = &self.fields;
        let mut parser = QueryParser::for_index(
            &self.index,
            vec![f.name_raw, f.name_words, f.title, f.description, f.annotations, f.server_text],
        );
        parser.set_field_boost(f.name_raw, 8.0);
        parser.set_field_boost(f.name_words, 4.0);
        parser.set_field_boost(f.title, 2.0);
        parser.set_field_boost(f.description, 1.0);
        parser.set_field_boost(f.annotations, 0.5);
        parser.set_field_boost(f.server_text, 0.5);
        let (query, errors) = parser.parse_query_lenient(text);
        if !errors.is_empty() {
            tracing::debug!("query {text:?} parsed leniently: {errors:?}");
        }
        query
    }

    /// Filter clauses (scoring nothing), or `None` when no tool can match.
    fn filters(&self, q: &SearchQuery) -> Option<Vec<(Occur, Box<dyn Query>)>> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let any_of = |field: Field, codes: Vec<u64>| -> Box<dyn Query> {
            let terms: Vec<(Occur, Box<dyn Query>)> = codes
                .into_iter()
                .map(|c| {
                    let q: Box<dyn Query> =
                        Box::new(TermQuery::new(Term::from_field_u64(field, c), IndexRecordOption::Basic));
                    (Occur::Should, q)
                })
                .collect();
            Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(terms)), 0.0))
        };
        if !q.categories.is_empty() {
            clauses.push((Occur::Must, any_of(f.category, q.categories.iter().map(|c| category_code(*c)).collect())));
        }
        let risks: Vec<Risk> = Risk::ALL
            .into_iter()
            .filter(|r| q.risks.is_empty() || q.risks.contains(r))
            .filter(|r| q.min_risk.is_none_or(|min| *r >= min))
            .collect();
        if risks.is_empty() {
            return None;
        }
        if risks.len() < Risk::ALL.len() {
            clauses.push((Occur::Must, any_of(f.risk, risks.iter().map(|r| u64::from(r.rank())).collect())));
        }
        if let Some(server) = &q.server {
            let term = Term::from_field_text(f.server, bounded(server, MAX_TERM_BYTES));
            let query = TermQuery::new(term, IndexRecordOption::Basic);
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(query), 0.0))));
        }
        Some(clauses)
    }

    fn hit(
        &self,
        searcher: &tantivy::Searcher,
        address: DocAddress,
        score: f32,
        snippets: Option<&SnippetGenerator>,
    ) -> Result<SearchHit, IndexError> {
        let f = &self.fields;
        let doc: TantivyDocument =
            searcher.doc(address).map_err(|source| IndexError::Tantivy { path: self.dir.clone(), source })?;
        let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or_default();
        let description = text(f.description);
        let snippet = snippets.map(|g| render_snippet(&g.snippet(&description))).filter(|s| !s.is_empty());
        let snippet = snippet.unwrap_or_else(|| description.chars().take(SNIPPET_CHARS).collect());
        Ok(SearchHit {
            server: text(f.server_name),
            name: text(f.name),
            title: doc.get_first(f.title).and_then(|v| v.as_str()).map(str::to_string),
            category: Category::ALL.get(number(f.category) as usize).copied().unwrap_or(Category::Read),
            risk: Risk::ALL.get(number(f.risk) as usize).copied().unwrap_or(Risk::Low),
            confidence: doc.get_first(f.confidence).and_then(|v| v.as_f64()).unwrap_or_default(),
            score,
            description,
            snippet,
            evidence: serde_json::from_str(&text(f.evidence)).unwrap_or_default(),
            fingerprint: text(f.fingerprint),
        })
    }
}

/// Counts of matches by risk, category and server: the facets of a search page.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facets {
    /// Tools that match the whole query.
    pub total: usize,
    pub risk: Vec<(Risk, usize)>,
    pub category: Vec<(Category, usize)>,
    /// The servers with most matches, most first.
    pub server: Vec<(String, usize)>,
    /// How many servers have matches in all.
    pub servers: usize,
}

/// Which fast field a [`DimCount`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Risk,
    Category,
    Server,
}

/// Counts matching documents, and for each of its dimensions the matches by the value of that fast field
/// (as text: the code, or the server name).
struct DimCount(Vec<Dim>);

/// A segment's column and a count per value: codes (risk, category) are small numbers and server names are
/// dictionary ordinals, so counts are a vector indexed by value, not a map (this loop runs once per match).
struct DimColumn {
    /// The value per document: the code, or the ordinal of the server name in `names`.
    values: tantivy::columnar::Column<u64>,
    names: Option<tantivy::columnar::StrColumn>,
}

type DimFruit = (usize, Vec<Vec<(String, usize)>>);

impl tantivy::collector::Collector for DimCount {
    type Fruit = DimFruit;
    type Child = DimSegment;

    fn for_segment(&self, _: tantivy::SegmentOrdinal, segment: &tantivy::SegmentReader) -> tantivy::Result<DimSegment> {
        let fast = segment.fast_fields();
        let mut columns = Vec::with_capacity(self.0.len());
        for dim in &self.0 {
            let column = match dim {
                Dim::Risk => DimColumn { values: fast.u64("risk")?, names: None },
                Dim::Category => DimColumn { values: fast.u64("category")?, names: None },
                Dim::Server => match fast.str("server")? {
                    Some(names) => DimColumn { values: names.ords().clone(), names: Some(names) },
                    // A segment without the column has no server to count (kept in place: fruits are by position).
                    None => {
                        columns.push((*dim, None, Vec::new()));
                        continue;
                    }
                },
            };
            let size = column.names.as_ref().map_or(16, |c| c.num_terms());
            columns.push((*dim, Some(column), vec![0; size]));
        }
        Ok(DimSegment { columns, total: 0, block: Vec::new() })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<DimFruit>) -> tantivy::Result<DimFruit> {
        let mut all: Vec<std::collections::HashMap<String, usize>> = vec![Default::default(); self.0.len()];
        let mut total = 0;
        for (n, dims) in fruits {
            total += n;
            for (i, counts) in dims.into_iter().enumerate() {
                for (key, n) in counts {
                    *all[i].entry(key).or_default() += n;
                }
            }
        }
        Ok((total, all.into_iter().map(|m| m.into_iter().collect()).collect()))
    }
}

struct DimSegment {
    columns: Vec<(Dim, Option<DimColumn>, Vec<usize>)>,
    total: usize,
    /// Values of one block of documents (reused).
    block: Vec<Option<u64>>,
}

impl tantivy::collector::SegmentCollector for DimSegment {
    type Fruit = DimFruit;

    fn collect(&mut self, doc: tantivy::DocId, _: tantivy::Score) {
        self.collect_block(&[doc]);
    }

    /// Whole blocks of matches at once: one column read per block instead of per document.
    fn collect_block(&mut self, docs: &[tantivy::DocId]) {
        self.total += docs.len();
        self.block.clear();
        self.block.resize(docs.len(), None);
        for (_, column, counts) in &mut self.columns {
            let Some(column) = column else { continue };
            column.values.first_vals(docs, &mut self.block);
            for v in self.block.iter().flatten() {
                if let Some(slot) = counts.get_mut(*v as usize) {
                    *slot += 1;
                }
            }
        }
    }

    fn harvest(self) -> DimFruit {
        let mut dims = Vec::with_capacity(self.columns.len());
        for (_, column, counts) in self.columns {
            let counted = counts.into_iter().enumerate().filter(|(_, n)| *n > 0);
            dims.push(match column.as_ref().and_then(|c| c.names.as_ref()) {
                None => counted.map(|(k, n)| (k.to_string(), n)).collect(),
                // One sorted walk of the dictionary: looking each ordinal up alone costs a block decode per
                // server per segment (thousands of servers times dozens of segments per page).
                Some(names) => {
                    let (ords, ns): (Vec<u64>, Vec<usize>) = counted.map(|(o, n)| (o as u64, n)).unzip();
                    let mut found = Vec::with_capacity(ords.len());
                    let ok = names
                        .dictionary()
                        .sorted_ords_to_term_cb(&ords, |bytes| found.push(String::from_utf8_lossy(bytes).into_owned()))
                        .unwrap_or(false);
                    if ok { found.into_iter().zip(ns).collect() } else { Vec::new() }
                }
            });
        }
        (self.total, dims)
    }
}

fn category_code(category: Category) -> u64 {
    Category::ALL.iter().position(|c| *c == category).unwrap_or(0) as u64
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn bounded(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

fn render_snippet(snippet: &tantivy::snippet::Snippet) -> String {
    let fragment = snippet.fragment();
    let mut out = String::with_capacity(fragment.len() + 8);
    let mut at = 0;
    for range in snippet.highlighted() {
        if range.start < at || range.end > fragment.len() {
            continue;
        }
        out.push_str(&fragment[at..range.start]);
        out.push_str("**");
        out.push_str(&fragment[range.clone()]);
        out.push_str("**");
        at = range.end;
    }
    out.push_str(&fragment[at..]);
    out
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
