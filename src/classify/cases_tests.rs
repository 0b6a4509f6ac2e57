//! Hand-labelled tools of many kinds, written for this project (not taken from any scoring set): payments,
//! source hosting, trackers, clouds, databases, shells, browsers, messaging, marketing, spreadsheets, files.
//! Each row is (name, description, input schema properties as JSON, expected category, the reason in a word).
//! The classifier must get nearly all of them, and every money-moving tool must come out critical.

use serde_json::{Value, json};

use super::Classifier;
use crate::model::{Category, Risk, Tool};

const CASES: &[(&str, &str, &str, &str, &str)] = &[
    // --- payments ---------------------------------------------------------------------------------------
    (
        "create_payment_intent",
        "Creates a PaymentIntent to collect a payment from a customer.",
        r#"{"amount":{"type":"integer"},"currency":{"type":"string"},"customer":{"type":"string"}}"#,
        "financial",
        "charge",
    ),
    (
        "create_refund",
        "Refund a charge that has previously been created but not yet refunded.",
        r#"{"charge":{"type":"string"},"amount":{"type":"integer"}}"#,
        "financial",
        "refund",
    ),
    (
        "stripe_create_payout",
        "Send funds to your own bank account.",
        r#"{"amount":{"type":"integer"},"currency":{"type":"string"}}"#,
        "financial",
        "payout",
    ),
    (
        "capture_payment",
        "Captures the funds of an existing uncaptured PaymentIntent.",
        r#"{"payment_intent":{"type":"string"}}"#,
        "financial",
        "capture",
    ),
    (
        "createTransfer",
        "Transfer money between two accounts.",
        r#"{"fromAccount":{"type":"string"},"toAccount":{"type":"string"},"amount":{"type":"number"}}"#,
        "financial",
        "transfer",
    ),
    (
        "send_money",
        "Send money to a contact by email or phone number.",
        r#"{"recipient":{"type":"string"},"amount":{"type":"string"},"currency":{"type":"string"}}"#,
        "financial",
        "transfer",
    ),
    (
        "finalize_invoice",
        "Finalize a draft invoice so it can be paid.",
        r#"{"invoice":{"type":"string"}}"#,
        "financial",
        "invoice",
    ),
    (
        "create_invoice",
        "Create an invoice for a customer and send it.",
        r#"{"customer":{"type":"string"},"days_until_due":{"type":"integer"}}"#,
        "financial",
        "invoice",
    ),
    (
        "pay_invoice",
        "Pay an open invoice using the customer's default payment method.",
        r#"{"invoice":{"type":"string"}}"#,
        "financial",
        "payment",
    ),
    ("void_invoice", "Mark a finalized invoice as void.", r#"{"invoice":{"type":"string"}}"#, "financial", "invoice"),
    (
        "create_subscription",
        "Creates a new subscription on an existing customer.",
        r#"{"customer":{"type":"string"},"price":{"type":"string"}}"#,
        "financial",
        "subscription",
    ),
    (
        "cancel_subscription",
        "Cancels a customer's subscription immediately.",
        r#"{"subscription":{"type":"string"}}"#,
        "financial",
        "subscription",
    ),
    (
        "update_subscription",
        "Update a subscription's plan or quantity; prorations are billed.",
        r#"{"subscription":{"type":"string"},"price":{"type":"string"}}"#,
        "financial",
        "subscription",
    ),
    (
        "create_price",
        "Creates a new price for an existing product.",
        r#"{"product":{"type":"string"},"unit_amount":{"type":"integer"},"currency":{"type":"string"}}"#,
        "financial",
        "price",
    ),
    (
        "create_coupon",
        "Create a coupon that gives a percentage or amount off.",
        r#"{"percent_off":{"type":"number"},"duration":{"type":"string"}}"#,
        "financial",
        "coupon",
    ),
    (
        "create_promotion_code",
        "Create a promotion code for a coupon.",
        r#"{"coupon":{"type":"string"},"code":{"type":"string"}}"#,
        "financial",
        "discount",
    ),
    (
        "charge_customer",
        "Charge the customer's saved card.",
        r#"{"customer_id":{"type":"string"},"amount_cents":{"type":"integer"}}"#,
        "financial",
        "charge",
    ),
    (
        "square_create_payment",
        "Take a payment with a card on file.",
        r#"{"source_id":{"type":"string"},"amount_money":{"type":"object"}}"#,
        "financial",
        "payment",
    ),
    (
        "paypal_refund_capture",
        "Refunds a captured payment, by ID.",
        r#"{"capture_id":{"type":"string"}}"#,
        "financial",
        "refund",
    ),
    (
        "place_order",
        "Place a market or limit order to buy or sell a stock.",
        r#"{"symbol":{"type":"string"},"side":{"type":"string","enum":["buy","sell"]},"qty":{"type":"number"}}"#,
        "financial",
        "trade",
    ),
    (
        "buy_crypto",
        "Buy cryptocurrency with the account's fiat balance.",
        r#"{"asset":{"type":"string"},"amount":{"type":"string"}}"#,
        "financial",
        "trade",
    ),
    (
        "process_payment",
        "Process a payment for an order.",
        r#"{"order_id":{"type":"string"},"payment_method":{"type":"string"}}"#,
        "financial",
        "payment",
    ),
    (
        "payments",
        "Manage payments.",
        r#"{"action":{"type":"string","enum":["list","get","create","refund"]},"id":{"type":"string"}}"#,
        "financial",
        "enum",
    ),
    (
        "list_charges",
        "List all charges for a customer.",
        r#"{"customer":{"type":"string"},"limit":{"type":"integer"}}"#,
        "read",
        "list",
    ),
    ("get_balance", "Retrieves the current account balance.", "{}", "read", "get"),
    ("retrieve_invoice", "Retrieves the invoice with the given ID.", r#"{"invoice":{"type":"string"}}"#, "read", "get"),
    (
        "search_payments",
        "Search payments by amount, status or customer.",
        r#"{"query":{"type":"string"},"amount":{"type":"integer"},"currency":{"type":"string"}}"#,
        "read",
        "search",
    ),
    (
        "convert_currency",
        "Convert an amount from one currency to another using today's rates.",
        r#"{"amount":{"type":"number"},"from":{"type":"string"},"to":{"type":"string"}}"#,
        "read",
        "compute",
    ),
    (
        "create_customer",
        "Create a new customer record.",
        r#"{"email":{"type":"string"},"name":{"type":"string"}}"#,
        "write",
        "create",
    ),
    (
        "delete_customer",
        "Permanently deletes a customer. It cannot be undone.",
        r#"{"customer":{"type":"string"}}"#,
        "destructive",
        "delete",
    ),
    // --- source hosting -------------------------------------------------------------------------------------
    (
        "github.create_issue",
        "Create a new issue in a repository.",
        r#"{"owner":{"type":"string"},"repo":{"type":"string"},"title":{"type":"string"}}"#,
        "write",
        "create",
    ),
    (
        "delete_repository",
        "Delete a repository. This action cannot be undone.",
        r#"{"owner":{"type":"string"},"repo":{"type":"string"}}"#,
        "destructive",
        "delete",
    ),
    (
        "gitlab_delete_branch",
        "Deletes a branch from the project.",
        r#"{"project_id":{"type":"string"},"branch":{"type":"string"}}"#,
        "destructive",
        "delete",
    ),
    (
        "listPullRequests",
        "List pull requests in a repository.",
        r#"{"state":{"type":"string","enum":["open","closed","all"]}}"#,
        "read",
        "list",
    ),
    (
        "merge_pull_request",
        "Merge a pull request.",
        r#"{"pull_number":{"type":"integer"},"merge_method":{"type":"string","enum":["merge","squash","rebase"]}}"#,
        "write",
        "merge",
    ),
    (
        "git_push",
        "Push local commits to the remote.",
        r#"{"remote":{"type":"string"},"branch":{"type":"string"},"force":{"type":"boolean"}}"#,
        "write",
        "push",
    ),
    (
        "git_force_push",
        "Force push a branch, replacing the remote history.",
        r#"{"branch":{"type":"string"}}"#,
        "destructive",
        "force",
    ),
    (
        "trigger_workflow",
        "Trigger a GitHub Actions workflow run.",
        r#"{"workflow_id":{"type":"string"},"ref":{"type":"string"}}"#,
        "execute",
        "trigger",
    ),
    ("rerun_job", "Re-run a failed CI job.", r#"{"job_id":{"type":"integer"}}"#, "execute", "rerun"),
    ("get-commit", "Get details of a single commit.", r#"{"sha":{"type":"string"}}"#, "read", "get"),
    // --- trackers -----------------------------------------------------------------------------------------
    (
        "jira_create_issue",
        "Create a Jira issue.",
        r#"{"project":{"type":"string"},"summary":{"type":"string"}}"#,
        "write",
        "create",
    ),
    (
        "jira_transition_issue",
        "Move an issue to another status.",
        r#"{"issue_key":{"type":"string"},"transition_id":{"type":"string"}}"#,
        "write",
        "transition",
    ),
    ("linear_search_issues", "Search issues by text.", r#"{"query":{"type":"string"}}"#, "read", "search"),
    ("asana_delete_task", "Delete a task.", r#"{"task_gid":{"type":"string"}}"#, "destructive", "delete"),
    (
        "add_comment",
        "Add a comment to a ticket.",
        r#"{"ticket_id":{"type":"string"},"body":{"type":"string"}}"#,
        "write",
        "comment",
    ),
    (
        "archive_project",
        "Archive a project; it can be restored later.",
        r#"{"project_id":{"type":"string"}}"#,
        "write",
        "archive",
    ),
    // --- clouds -------------------------------------------------------------------------------------------
    (
        "ec2_terminate_instances",
        "Shuts down one or more instances. Terminated instances cannot be restarted.",
        r#"{"InstanceIds":{"type":"array","items":{"type":"string"}}}"#,
        "destructive",
        "terminate",
    ),
    (
        "ec2_describe_instances",
        "Describes the specified instances or all instances.",
        r#"{"InstanceIds":{"type":"array"}}"#,
        "read",
        "describe",
    ),
    (
        "s3_put_object",
        "Adds an object to a bucket, replacing any existing object with the same key.",
        r#"{"Bucket":{"type":"string"},"Key":{"type":"string"},"Body":{"type":"string"}}"#,
        "destructive",
        "overwrite",
    ),
    ("s3_list_buckets", "Returns a list of all buckets owned by the authenticated sender.", "{}", "read", "list"),
    ("delete_bucket", "Deletes the S3 bucket.", r#"{"Bucket":{"type":"string"}}"#, "destructive", "delete"),
    (
        "lambda_invoke",
        "Invokes a Lambda function.",
        r#"{"FunctionName":{"type":"string"},"Payload":{"type":"string"}}"#,
        "execute",
        "invoke",
    ),
    (
        "kubectl_apply",
        "Apply a configuration to a resource by file name.",
        r#"{"manifest":{"type":"string"},"namespace":{"type":"string"}}"#,
        "execute",
        "apply",
    ),
    (
        "k8s_delete_pod",
        "Delete a pod in a namespace.",
        r#"{"name":{"type":"string"},"namespace":{"type":"string"}}"#,
        "destructive",
        "delete",
    ),
    (
        "scale_deployment",
        "Scale a deployment to the given number of replicas.",
        r#"{"name":{"type":"string"},"replicas":{"type":"integer"}}"#,
        "write",
        "scale",
    ),
    (
        "deploy_service",
        "Deploy a new revision of the service to production.",
        r#"{"service":{"type":"string"},"image":{"type":"string"}}"#,
        "execute",
        "deploy",
    ),
    (
        "vercel_list_deployments",
        "List deployments for a project.",
        r#"{"projectId":{"type":"string"}}"#,
        "read",
        "list",
    ),
    ("stop_instance", "Stops a running virtual machine.", r#"{"instance":{"type":"string"}}"#, "destructive", "stop"),
    (
        "create_vm",
        "Create a new virtual machine.",
        r#"{"name":{"type":"string"},"size":{"type":"string"}}"#,
        "write",
        "create",
    ),
    (
        "cloudflare_purge_cache",
        "Purge all cached files for a zone.",
        r#"{"zone_id":{"type":"string"}}"#,
        "destructive",
        "purge",
    ),
    // --- databases ----------------------------------------------------------------------------------------
    (
        "execute_sql",
        "Execute any SQL statement against the database.",
        r#"{"sql":{"type":"string"}}"#,
        "execute",
        "sql",
    ),
    (
        "run_query",
        "Runs a read-only SQL query and returns rows.",
        r#"{"query":{"type":"string"}}"#,
        "read",
        "read-only",
    ),
    (
        "mongo_find",
        "Find documents in a collection.",
        r#"{"collection":{"type":"string"},"filter":{"type":"object"}}"#,
        "read",
        "find",
    ),
    (
        "mongo_insert_many",
        "Insert multiple documents into a collection.",
        r#"{"collection":{"type":"string"},"documents":{"type":"array"}}"#,
        "write",
        "insert",
    ),
    (
        "drop_collection",
        "Removes a collection from the database.",
        r#"{"collection":{"type":"string"}}"#,
        "destructive",
        "drop",
    ),
    ("redis_flushall", "Delete all the keys of all the existing databases.", "{}", "destructive", "flush"),
    (
        "redis_set",
        "Set the string value of a key.",
        r#"{"key":{"type":"string"},"value":{"type":"string"}}"#,
        "write",
        "set",
    ),
    (
        "supabase_create_branch",
        "Creates a development branch of the database.",
        r#"{"project_id":{"type":"string"}}"#,
        "write",
        "create",
    ),
    ("list_tables", "List all tables in a schema.", r#"{"schema":{"type":"string"}}"#, "read", "list"),
    // --- shells and code --------------------------------------------------------------------------------------
    (
        "run_command",
        "Run a shell command on the host and return its output.",
        r#"{"command":{"type":"string"},"cwd":{"type":"string"}}"#,
        "execute",
        "shell",
    ),
    (
        "bash",
        "Executes a bash command in a persistent session.",
        r#"{"command":{"type":"string"}}"#,
        "execute",
        "shell",
    ),
    ("python_exec", "Execute Python code in a sandbox.", r#"{"code":{"type":"string"}}"#, "execute", "code"),
    ("kill_process", "Terminate a process by PID.", r#"{"pid":{"type":"integer"}}"#, "destructive", "kill"),
    ("list_processes", "List running processes.", "{}", "read", "list"),
    ("docker_run", "Create and start a container from an image.", r#"{"image":{"type":"string"}}"#, "execute", "run"),
    // --- files --------------------------------------------------------------------------------------------
    ("fs_delete_file", "Delete a file.", r#"{"path":{"type":"string"}}"#, "destructive", "delete"),
    (
        "write_text",
        "Write text to a file, overwriting it if it exists.",
        r#"{"path":{"type":"string"},"text":{"type":"string"}}"#,
        "destructive",
        "overwrite",
    ),
    ("read_pdf", "Extract the text of a PDF document.", r#"{"path":{"type":"string"}}"#, "read", "read"),
    (
        "manage_file",
        "Read, write or delete files.",
        r#"{"action":{"type":"string","enum":["read","write","delete"]},"path":{"type":"string"}}"#,
        "destructive",
        "enum",
    ),
    (
        "copy_file",
        "Copy a file to a new location.",
        r#"{"source":{"type":"string"},"destination":{"type":"string"}}"#,
        "write",
        "copy",
    ),
    ("gdrive_search", "Search for files in Google Drive.", r#"{"query":{"type":"string"}}"#, "read", "search"),
    // --- browsers -----------------------------------------------------------------------------------------
    ("puppeteer_click", "Click an element on the page.", r#"{"selector":{"type":"string"}}"#, "execute", "click"),
    (
        "puppeteer_evaluate",
        "Execute JavaScript in the browser console.",
        r#"{"script":{"type":"string"}}"#,
        "execute",
        "code",
    ),
    (
        "puppeteer_screenshot",
        "Take a screenshot of the current page or a specific element.",
        r#"{"name":{"type":"string"},"selector":{"type":"string"}}"#,
        "read",
        "screenshot",
    ),
    (
        "browser_fill",
        "Fill out an input field.",
        r#"{"selector":{"type":"string"},"value":{"type":"string"}}"#,
        "execute",
        "ui",
    ),
    ("navigate", "Navigate the browser to a URL.", r#"{"url":{"type":"string"}}"#, "read", "navigate"),
    ("get_page_text", "Get the visible text of the current page.", "{}", "read", "get"),
    // --- messaging ----------------------------------------------------------------------------------------
    (
        "send_email",
        "Send an email to one or more recipients.",
        r#"{"to":{"type":"array"},"subject":{"type":"string"},"body":{"type":"string"}}"#,
        "execute",
        "message",
    ),
    (
        "gmail_create_draft",
        "Create a draft email without sending it.",
        r#"{"to":{"type":"string"},"body":{"type":"string"}}"#,
        "write",
        "draft",
    ),
    ("gmail_search_messages", "Search emails with Gmail query syntax.", r#"{"q":{"type":"string"}}"#, "read", "search"),
    (
        "chat_postMessage",
        "Posts a message to a channel.",
        r#"{"channel":{"type":"string"},"text":{"type":"string"}}"#,
        "execute",
        "message",
    ),
    (
        "discord_send",
        "Send a message to a Discord channel.",
        r#"{"channelId":{"type":"string"},"message":{"type":"string"}}"#,
        "execute",
        "message",
    ),
    (
        "twilio_send_sms",
        "Send an SMS message.",
        r#"{"to":{"type":"string"},"body":{"type":"string"}}"#,
        "execute",
        "message",
    ),
    ("telegram_get_updates", "Receive incoming updates.", r#"{"offset":{"type":"integer"}}"#, "read", "get"),
    (
        "delete_message",
        "Delete a message from a channel.",
        r#"{"channel":{"type":"string"},"ts":{"type":"string"}}"#,
        "destructive",
        "delete",
    ),
    // --- marketing and CRM ---------------------------------------------------------------------------------
    (
        "mailchimp_send_campaign",
        "Send a campaign to its audience right now.",
        r#"{"campaign_id":{"type":"string"}}"#,
        "execute",
        "message",
    ),
    (
        "hubspot_create_contact",
        "Create a contact in HubSpot CRM.",
        r#"{"email":{"type":"string"},"firstname":{"type":"string"}}"#,
        "write",
        "create",
    ),
    ("hubspot_get_contacts", "Retrieve contacts with pagination.", r#"{"limit":{"type":"integer"}}"#, "read", "get"),
    (
        "unsubscribe_contact",
        "Remove a contact from a mailing list.",
        r#"{"list_id":{"type":"string"},"email":{"type":"string"}}"#,
        "destructive",
        "remove",
    ),
    (
        "publish_post",
        "Publish a post to the company's LinkedIn page.",
        r#"{"text":{"type":"string"}}"#,
        "execute",
        "publish",
    ),
    // --- spreadsheets and docs ------------------------------------------------------------------------------
    (
        "sheets_get_values",
        "Returns a range of values from a spreadsheet.",
        r#"{"spreadsheetId":{"type":"string"},"range":{"type":"string"}}"#,
        "read",
        "get",
    ),
    (
        "sheets_update_values",
        "Sets values in a range of a spreadsheet.",
        r#"{"spreadsheetId":{"type":"string"},"range":{"type":"string"},"values":{"type":"array"}}"#,
        "write",
        "update",
    ),
    (
        "sheets_clear_values",
        "Clears values from a spreadsheet range.",
        r#"{"spreadsheetId":{"type":"string"},"range":{"type":"string"}}"#,
        "destructive",
        "clear",
    ),
    (
        "docs_append_text",
        "Append text to the end of a document.",
        r#"{"documentId":{"type":"string"},"text":{"type":"string"}}"#,
        "write",
        "append",
    ),
    (
        "airtable_delete_records",
        "Deletes records from a table.",
        r#"{"records":{"type":"array"}}"#,
        "destructive",
        "delete",
    ),
    (
        "calendar_create_event",
        "Create a calendar event and invite attendees.",
        r#"{"summary":{"type":"string"},"attendees":{"type":"array"}}"#,
        "write",
        "create",
    ),
    ("list_events", "List upcoming events.", r#"{"calendarId":{"type":"string"}}"#, "read", "list"),
    // --- identity and secrets ----------------------------------------------------------------------------------
    ("revoke_token", "Revoke an access token.", r#"{"token_id":{"type":"string"}}"#, "destructive", "revoke"),
    ("get_secret_value", "Retrieve the value of a secret.", r#"{"SecretId":{"type":"string"}}"#, "read", "get"),
    (
        "create_user",
        "Create a new user account.",
        r#"{"username":{"type":"string"},"email":{"type":"string"}}"#,
        "write",
        "create",
    ),
    (
        "reset_password",
        "Reset a user's password and invalidate existing sessions.",
        r#"{"user_id":{"type":"string"}}"#,
        "destructive",
        "reset",
    ),
    // --- misc ---------------------------------------------------------------------------------------------
    (
        "weather_forecast",
        "Get the weather forecast for a location.",
        r#"{"latitude":{"type":"number"},"longitude":{"type":"number"}}"#,
        "read",
        "get",
    ),
    (
        "wikipedia",
        "Look up a topic on Wikipedia and return the summary.",
        r#"{"topic":{"type":"string"}}"#,
        "read",
        "lookup",
    ),
    (
        "http_request",
        "Make an HTTP request.",
        r#"{"url":{"type":"string"},"method":{"type":"string","enum":["GET","POST","PUT","DELETE"]}}"#,
        "destructive",
        "enum",
    ),
    ("memory_store", "Store a memory for later recall.", r#"{"content":{"type":"string"}}"#, "write", "store"),
    ("generate_image", "Generate an image from a text prompt.", r#"{"prompt":{"type":"string"}}"#, "write", "generate"),
    (
        "translate_text",
        "Translate text into another language.",
        r#"{"text":{"type":"string"},"target":{"type":"string"}}"#,
        "read",
        "compute",
    ),
];

fn tool(name: &str, description: &str, props: &str) -> Tool {
    let props: Value = serde_json::from_str(props).unwrap_or_else(|e| panic!("{name}: bad schema: {e}"));
    Tool::named(name).with_description(description).with_input_schema(json!({"type": "object", "properties": props}))
}

#[test]
fn labelled_cases_are_classified_as_a_reviewer_would() {
    let classifier = Classifier::builtin();
    let mut misses = Vec::new();
    for (name, description, props, expected, why) in CASES {
        let expected: Category = expected.parse().unwrap();
        let got = classifier.classify(&tool(name, description, props));
        assert!(!why.is_empty());
        assert!(!got.evidence.is_empty(), "{name}: no evidence");
        if got.category != expected {
            misses.push(format!("{name}: expected {expected} ({why}), got {} from {:?}", got.category, got.evidence));
        }
    }
    let accuracy = 1.0 - misses.len() as f64 / CASES.len() as f64;
    assert!(CASES.len() >= 80);
    assert!(accuracy >= 0.93, "accuracy {accuracy:.3} over {} cases; misses:\n{}", CASES.len(), misses.join("\n"));
}

#[test]
fn every_money_moving_case_is_critical() {
    let classifier = Classifier::builtin();
    for (name, description, props, expected, _) in CASES.iter().filter(|c| c.3 == "financial") {
        let got = classifier.classify(&tool(name, description, props));
        assert!(got.category.severity() == 3 && got.risk == Risk::Critical, "{name} ({expected}): {got:?}");
    }
}
