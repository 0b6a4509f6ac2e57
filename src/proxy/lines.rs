//! Newline-delimited JSON-RPC framing with a bound: a peer that never sends a newline cannot make us buffer
//! without limit. An oversized line is skipped up to its newline and reported, so the stream stays usable.

use std::io::{self, BufRead};

/// One frame read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(Vec<u8>),
    /// A line longer than the bound (its length so far); its bytes were discarded.
    TooLong(usize),
    Eof,
}

/// Reads lines of at most `max` bytes, skipping blank ones.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, max }
    }

    pub fn next_frame(&mut self) -> io::Result<Frame> {
        let mut buf = Vec::new();
        let mut skipped: Option<usize> = None;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(match skipped {
                    Some(n) => Frame::TooLong(n),
                    None if is_blank(&buf) => Frame::Eof,
                    None => Frame::Line(trim(buf)),
                });
            }
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(pos) => (&available[..pos], Some(pos + 1)),
                None => (available, None),
            };
            match &mut skipped {
                Some(n) => *n += chunk.len(),
                None if buf.len() + chunk.len() > self.max => {
                    skipped = Some(buf.len() + chunk.len());
                    buf = Vec::new();
                }
                None => buf.extend_from_slice(chunk),
            }
            let used = found.unwrap_or(available.len());
            self.inner.consume(used);
            if found.is_some() {
                if let Some(n) = skipped {
                    return Ok(Frame::TooLong(n));
                }
                if !is_blank(&buf) {
                    return Ok(Frame::Line(trim(buf)));
                }
                buf.clear();
            }
        }
    }
}

fn is_blank(buf: &[u8]) -> bool {
    buf.iter().all(u8::is_ascii_whitespace)
}

fn trim(mut buf: Vec<u8>) -> Vec<u8> {
    while buf.last().is_some_and(u8::is_ascii_whitespace) {
        buf.pop();
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_the_stream_recovers() {
        let input = b"{\"a\":1}\r\n\n  \n0123456789abcdef\n{\"b\":2}\n{\"c\":3}";
        let mut r = LineReader::new(io::BufReader::with_capacity(4, &input[..]), 10);
        assert_eq!(r.next_frame().unwrap(), Frame::Line(b"{\"a\":1}".to_vec()));
        assert_eq!(r.next_frame().unwrap(), Frame::TooLong(16));
        assert_eq!(r.next_frame().unwrap(), Frame::Line(b"{\"b\":2}".to_vec()));
        assert_eq!(r.next_frame().unwrap(), Frame::Line(b"{\"c\":3}".to_vec()));
        assert_eq!(r.next_frame().unwrap(), Frame::Eof);
    }
}
