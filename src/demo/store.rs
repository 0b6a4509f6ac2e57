//! The demo shop's in-memory data: customers, orders, products, refunds and an outbox.
//!
//! Tools really change this state (so proxy tests can see that a refused call changed nothing), but nothing
//! leaves the process: no money moves and no mail is sent.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Everything the demo tools read and write.
#[derive(Debug)]
pub(crate) struct Shop {
    pub(crate) customers: BTreeMap<String, Value>,
    pub(crate) orders: BTreeMap<String, Value>,
    pub(crate) products: Vec<Value>,
    pub(crate) refunds: Vec<Value>,
    pub(crate) outbox: Vec<Value>,
    next_id: u64,
}

impl Shop {
    /// A small shop with a few customers, orders and products.
    pub(crate) fn seeded() -> Shop {
        let customers = [
            ("c-1", "Ada Lovelace", "ada@example.com", "active"),
            ("c-2", "Grace Hopper", "grace@example.com", "active"),
            ("c-3", "Alan Turing", "alan@example.com", "inactive"),
        ]
        .into_iter()
        .map(|(id, name, email, status)| {
            (id.to_string(), json!({"id": id, "name": name, "email": email, "status": status}))
        })
        .collect();
        let orders = [
            ("o-1", "c-1", "shipped", 4_200, "EUR"),
            ("o-2", "c-1", "open", 1_999, "EUR"),
            ("o-3", "c-2", "open", 12_000, "USD"),
        ]
        .into_iter()
        .map(|(id, customer, status, total, currency)| {
            let order = json!({"id": id, "customer_id": customer, "status": status,
                               "total_cents": total, "currency": currency, "refunded_cents": 0});
            (id.to_string(), order)
        })
        .collect();
        let products = vec![
            json!({"sku": "p-1", "name": "Analytical engine", "price_cents": 99_900, "in_stock": true}),
            json!({"sku": "p-2", "name": "Punched cards (100)", "price_cents": 1_500, "in_stock": true}),
            json!({"sku": "p-3", "name": "Bug jar", "price_cents": 700, "in_stock": false}),
        ];
        Shop { customers, orders, products, refunds: Vec::new(), outbox: Vec::new(), next_id: 100 }
    }

    /// A fresh id with a prefix: `c-100`, `r-101`, ...
    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// Rows of one table for `run_report`.
    pub(crate) fn table(&self, name: &str) -> Option<Vec<Value>> {
        match name {
            "customers" => Some(self.customers.values().cloned().collect()),
            "orders" => Some(self.orders.values().cloned().collect()),
            "products" => Some(self.products.clone()),
            "refunds" => Some(self.refunds.clone()),
            "outbox" => Some(self.outbox.clone()),
            _ => None,
        }
    }
}

/// The tiny SQL `run_report` understands: `SELECT * FROM <table> [LIMIT n]` and `SELECT COUNT(*) FROM <table>`.
/// Anything else is refused with a message saying what is understood.
pub(crate) fn run_sql(shop: &Shop, sql: &str) -> Result<Value, String> {
    let words: Vec<String> =
        sql.trim().trim_end_matches(';').split_whitespace().map(|w| w.to_ascii_lowercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let usage = "only `SELECT * FROM <table> [LIMIT n]` and `SELECT COUNT(*) FROM <table>` are supported \
                 (tables: customers, orders, products, refunds, outbox)";
    let (count, table, rest) = match words.as_slice() {
        ["select", "*", "from", table, rest @ ..] => (false, *table, rest),
        ["select", "count(*)", "from", table, rest @ ..] => (true, *table, rest),
        _ => return Err(usage.to_string()),
    };
    let rows = shop.table(table).ok_or_else(|| format!("no table {table:?}; {usage}"))?;
    if count {
        return if rest.is_empty() { Ok(json!({"count": rows.len()})) } else { Err(usage.to_string()) };
    }
    let limit = match rest {
        [] => rows.len(),
        ["limit", n] => n.parse::<usize>().map_err(|_| format!("LIMIT needs a number, got {n:?}"))?,
        _ => return Err(usage.to_string()),
    };
    Ok(Value::Array(rows.into_iter().take(limit).collect()))
}
