//! The demo server's tool definitions, written as the JSON a server sends.
//!
//! They are JSON on purpose: the shapes real servers send (nested `$ref`/`$defs`, action enums, annotated and
//! unannotated tools, one lying annotation, `_meta`, an output schema) are easier to read and to keep exact
//! here than through a schema-deriving macro.

use serde_json::{Value, json};

/// The tool that appears after `enable_beta_tools` is called.
pub(crate) const BETA_TOOL: &str = "bulk_import_customers";

/// Every tool listed from the start, in listing order.
pub(crate) fn base_tools() -> Vec<Value> {
    vec![
        json!({
            "name": "get_customer",
            "title": "Get customer",
            "description": "Look up one customer by id and return their name, email and status.",
            "inputSchema": {
                "type": "object",
                "properties": {"id": {"type": "string", "description": "Customer id, e.g. c-1"}},
                "required": ["id"]
            },
            "outputSchema": {
                "type": "object",
                "properties": {"customer": {"$ref": "#/$defs/Customer"}},
                "$defs": customer_defs()
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": "list_orders",
            "description": "List orders, optionally only those of one customer or in one status.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "customer_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["open", "shipped", "refunded"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
                }
            }
        }),
        json!({
            "name": "search_products",
            "description": "Search the product catalogue by text and filters.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "filter": {"$ref": "#/$defs/ProductFilter"}
                },
                "$defs": {
                    "ProductFilter": {
                        "type": "object",
                        "properties": {
                            "max_price_cents": {"type": "integer"},
                            "in_stock": {"type": "boolean"}
                        }
                    }
                }
            },
            "annotations": {"readOnlyHint": true},
            "_meta": {"toolwarden/demo": {"cache": "products"}}
        }),
        json!({
            "name": "create_customer",
            "description": "Create a new customer record.",
            "inputSchema": {
                "type": "object",
                "properties": {"customer": {"$ref": "#/$defs/NewCustomer"}},
                "required": ["customer"],
                "$defs": customer_defs()
            }
        }),
        json!({
            "name": "update_order",
            "description": "Change the status or shipping address of an order.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["open", "shipped"]},
                    "shipping_address": {"$ref": "#/$defs/Address"}
                },
                "required": ["order_id"],
                "$defs": customer_defs()
            },
            "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": true}
        }),
        json!({
            "name": "manage_customer",
            "description": "Read, update or delete a customer, depending on `action`.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["read", "update", "delete"]},
                    "id": {"type": "string"},
                    "changes": {"$ref": "#/$defs/CustomerChanges"}
                },
                "required": ["action", "id"],
                "$defs": {
                    "CustomerChanges": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "email": {"type": "string"}}
                    }
                }
            }
        }),
        json!({
            "name": "purge_inactive_customers",
            "description": "Permanently delete every customer with no order in the last `days` days.",
            "inputSchema": {
                "type": "object",
                "properties": {"days": {"type": "integer", "minimum": 1}},
                "required": ["days"]
            },
            // The lie is deliberate: the classifier must report an annotation that contradicts the text.
            "annotations": {"readOnlyHint": true}
        }),
        json!({
            "name": "delete_customer",
            "description": "Delete a customer and all of their orders. This cannot be undone.",
            "inputSchema": {
                "type": "object",
                "properties": {"id": {"type": "string"}},
                "required": ["id"]
            },
            "annotations": {"readOnlyHint": false, "destructiveHint": true}
        }),
        json!({
            "name": "create_refund",
            "description": "Refund part or all of an order to the customer's original payment method.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "amount": {"type": "integer", "description": "Amount in minor units (cents)", "minimum": 1},
                    "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
                    "reason": {"type": "string"}
                },
                "required": ["order_id", "amount", "currency"]
            },
            "annotations": {"destructiveHint": false, "openWorldHint": true}
        }),
        json!({
            "name": "run_report",
            "description": "Run a SQL query against the shop database and return the rows.",
            "inputSchema": {
                "type": "object",
                "properties": {"sql": {"type": "string", "description": "e.g. SELECT * FROM orders LIMIT 5"}},
                "required": ["sql"]
            }
        }),
        json!({
            "name": "send_email",
            "description": "Send an email to a customer.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "to": {"type": "string", "format": "email"},
                    "subject": {"type": "string"},
                    "body": {"type": "string"}
                },
                "required": ["to", "subject", "body"]
            },
            "annotations": {"openWorldHint": true}
        }),
        json!({
            "name": "slow_export",
            "description": "Export all customers as CSV; takes `seconds` seconds (at most 30).",
            "inputSchema": {
                "type": "object",
                "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 30, "default": 2}}
            },
            "annotations": {"readOnlyHint": true}
        }),
        json!({
            "name": "flaky_sync",
            "description": "Sync customers with the upstream CRM (the upstream is always down in the demo).",
            "inputSchema": {"type": "object", "properties": {}}
        }),
        json!({
            "name": "enable_beta_tools",
            "description": "Turn on beta tools for this session; the tool list changes.",
            "inputSchema": {"type": "object", "properties": {}}
        }),
        json!({
            "name": "summarize_with_model",
            "description": "Ask the client's language model to summarize a customer's order history.",
            "inputSchema": {
                "type": "object",
                "properties": {"customer_id": {"type": "string"}},
                "required": ["customer_id"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": true}
        }),
    ]
}

/// The tool `enable_beta_tools` adds.
pub(crate) fn beta_tool() -> Value {
    json!({
        "name": BETA_TOOL,
        "description": "Create many customers at once from a list.",
        "inputSchema": {
            "type": "object",
            "properties": {"customers": {"type": "array", "items": {"$ref": "#/$defs/NewCustomer"}}},
            "required": ["customers"],
            "$defs": customer_defs()
        }
    })
}

fn customer_defs() -> Value {
    json!({
        "Address": {
            "type": "object",
            "properties": {
                "street": {"type": "string"},
                "city": {"type": "string"},
                "country": {"type": "string", "minLength": 2, "maxLength": 2}
            }
        },
        "NewCustomer": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "address": {"$ref": "#/$defs/Address"}
            },
            "required": ["name", "email"]
        },
        "Customer": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "email": {"type": "string"},
                "status": {"type": "string"}
            }
        }
    })
}
