//! Hand-labelled tools of many kinds, written for this project (not taken from any scoring set): payments,
//! source hosting, trackers, clouds, databases, shells, browsers, messaging, marketing, spreadsheets, files.
//! Each row is (name, description, input schema properties as JSON, expected category, the reason in a word).
//! The classifier must get nearly all of them, and every money-moving tool must come out critical.

use serde_json::{Value, json};

use super::Classifier;
use crate::model::{Category, Risk, Tool};

#[rustfmt::skip]
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    // --- payments ---------------------------------------------------------------------------------------
    ("create_payment_intent", "Creates a PaymentIntent to collect a payment from a customer.", r#"{"amount":{"type":"integer"},"currency":{"type":"string"},"customer":{"type":"string"}}"#, "financial", "charge"),
    ("create_refund", "Refund a charge that has previously been created but not yet refunded.", r#"{"charge":{"type":"string"},"amount":{"type":"integer"}}"#, "financial", "refund"),
    ("stripe_create_payout", "Send funds to your own bank account.", r#"{"amount":{"type":"integer"},"currency":{"type":"string"}}"#, "financial", "payout"),
    ("capture_payment", "Captures the funds of an existing uncaptured PaymentIntent.", r#"{"payment_intent":{"type":"string"}}"#, "financial", "capture"),
    ("createTransfer", "Transfer money between two accounts.", r#"{"fromAccount":{"type":"string"},"toAccount":{"type":"string"},"amount":{"type":"number"}}"#, "financial", "transfer"),
    ("send_money", "Send money to a contact by email or phone number.", r#"{"recipient":{"type":"string"},"amount":{"type":"string"},"currency":{"type":"string"}}"#, "financial", "transfer"),
    ("finalize_invoice", "Finalize a draft invoice so it can be paid.", r#"{"invoice":{"type":"string"}}"#, "financial", "invoice"),
    ("create_invoice", "Create an invoice for a customer and send it.", r#"{"customer":{"type":"string"},"days_until_due":{"type":"integer"}}"#, "financial", "invoice"),
    ("pay_invoice", "Pay an open invoice using the customer's default payment method.", r#"{"invoice":{"type":"string"}}"#, "financial", "payment"),
    ("void_invoice", "Mark a finalized invoice as void.", r#"{"invoice":{"type":"string"}}"#, "financial", "invoice"),
    ("create_subscription", "Creates a new subscription on an existing customer.", r#"{"customer":{"type":"string"},"price":{"type":"string"}}"#, "financial", "subscription"),
    ("cancel_subscription", "Cancels a customer's subscription immediately.", r#"{"subscription":{"type":"string"}}"#, "financial", "subscription"),
    ("update_subscription", "Update a subscription's plan or quantity; prorations are billed.", r#"{"subscription":{"type":"string"},"price":{"type":"string"}}"#, "financial", "subscription"),
    ("create_price", "Creates a new price for an existing product.", r#"{"product":{"type":"string"},"unit_amount":{"type":"integer"},"currency":{"type":"string"}}"#, "financial", "price"),
    ("create_coupon", "Create a coupon that gives a percentage or amount off.", r#"{"percent_off":{"type":"number"},"duration":{"type":"string"}}"#, "financial", "coupon"),
    ("create_promotion_code", "Create a promotion code for a coupon.", r#"{"coupon":{"type":"string"},"code":{"type":"string"}}"#, "financial", "discount"),
    ("charge_customer", "Charge the customer's saved card.", r#"{"customer_id":{"type":"string"},"amount_cents":{"type":"integer"}}"#, "financial", "charge"),
    ("square_create_payment", "Take a payment with a card on file.", r#"{"source_id":{"type":"string"},"amount_money":{"type":"object"}}"#, "financial", "payment"),
    ("paypal_refund_capture", "Refunds a captured payment, by ID.", r#"{"capture_id":{"type":"string"}}"#, "financial", "refund"),
    ("place_order", "Place a market or limit order to buy or sell a stock.", r#"{"symbol":{"type":"string"},"side":{"type":"string","enum":["buy","sell"]},"qty":{"type":"number"}}"#, "financial", "trade"),
    ("buy_crypto", "Buy cryptocurrency with the account's fiat balance.", r#"{"asset":{"type":"string"},"amount":{"type":"string"}}"#, "financial", "trade"),
    ("process_payment", "Process a payment for an order.", r#"{"order_id":{"type":"string"},"payment_method":{"type":"string"}}"#, "financial", "payment"),
    ("payments", "Manage payments.", r#"{"action":{"type":"string","enum":["list","get","create","refund"]},"id":{"type":"string"}}"#, "financial", "enum"),
    ("list_charges", "List all charges for a customer.", r#"{"customer":{"type":"string"},"limit":{"type":"integer"}}"#, "read", "list"),
    ("get_balance", "Retrieves the current account balance.", "{}", "read", "get"),
    ("retrieve_invoice", "Retrieves the invoice with the given ID.", r#"{"invoice":{"type":"string"}}"#, "read", "get"),
    ("search_payments", "Search payments by amount, status or customer.", r#"{"query":{"type":"string"},"amount":{"type":"integer"},"currency":{"type":"string"}}"#, "read", "search"),
    ("convert_currency", "Convert an amount from one currency to another using today's rates.", r#"{"amount":{"type":"number"},"from":{"type":"string"},"to":{"type":"string"}}"#, "read", "compute"),
    ("create_customer", "Create a new customer record.", r#"{"email":{"type":"string"},"name":{"type":"string"}}"#, "write", "create"),
    ("delete_customer", "Permanently deletes a customer. It cannot be undone.", r#"{"customer":{"type":"string"}}"#, "destructive", "delete"),
    // --- source hosting -------------------------------------------------------------------------------------
    ("github.create_issue", "Create a new issue in a repository.", r#"{"owner":{"type":"string"},"repo":{"type":"string"},"title":{"type":"string"}}"#, "write", "create"),
    ("delete_repository", "Delete a repository. This action cannot be undone.", r#"{"owner":{"type":"string"},"repo":{"type":"string"}}"#, "destructive", "delete"),
    ("gitlab_delete_branch", "Deletes a branch from the project.", r#"{"project_id":{"type":"string"},"branch":{"type":"string"}}"#, "destructive", "delete"),
    ("listPullRequests", "List pull requests in a repository.", r#"{"state":{"type":"string","enum":["open","closed","all"]}}"#, "read", "list"),
    ("merge_pull_request", "Merge a pull request.", r#"{"pull_number":{"type":"integer"},"merge_method":{"type":"string","enum":["merge","squash","rebase"]}}"#, "write", "merge"),
    ("git_push", "Push local commits to the remote.", r#"{"remote":{"type":"string"},"branch":{"type":"string"},"force":{"type":"boolean"}}"#, "write", "push"),
    ("git_force_push", "Force push a branch, replacing the remote history.", r#"{"branch":{"type":"string"}}"#, "destructive", "force"),
    ("trigger_workflow", "Trigger a GitHub Actions workflow run.", r#"{"workflow_id":{"type":"string"},"ref":{"type":"string"}}"#, "execute", "trigger"),
    ("rerun_job", "Re-run a failed CI job.", r#"{"job_id":{"type":"integer"}}"#, "execute", "rerun"),
    ("get-commit", "Get details of a single commit.", r#"{"sha":{"type":"string"}}"#, "read", "get"),
    // --- trackers -----------------------------------------------------------------------------------------
    ("jira_create_issue", "Create a Jira issue.", r#"{"project":{"type":"string"},"summary":{"type":"string"}}"#, "write", "create"),
    ("jira_transition_issue", "Move an issue to another status.", r#"{"issue_key":{"type":"string"},"transition_id":{"type":"string"}}"#, "write", "transition"),
    ("linear_search_issues", "Search issues by text.", r#"{"query":{"type":"string"}}"#, "read", "search"),
    ("asana_delete_task", "Delete a task.", r#"{"task_gid":{"type":"string"}}"#, "destructive", "delete"),
    ("add_comment", "Add a comment to a ticket.", r#"{"ticket_id":{"type":"string"},"body":{"type":"string"}}"#, "write", "comment"),
    ("archive_project", "Archive a project; it can be restored later.", r#"{"project_id":{"type":"string"}}"#, "write", "archive"),
    // --- clouds -------------------------------------------------------------------------------------------
    ("ec2_terminate_instances", "Shuts down one or more instances. Terminated instances cannot be restarted.", r#"{"InstanceIds":{"type":"array","items":{"type":"string"}}}"#, "destructive", "terminate"),
    ("ec2_describe_instances", "Describes the specified instances or all instances.", r#"{"InstanceIds":{"type":"array"}}"#, "read", "describe"),
    ("s3_put_object", "Adds an object to a bucket, replacing any existing object with the same key.", r#"{"Bucket":{"type":"string"},"Key":{"type":"string"},"Body":{"type":"string"}}"#, "destructive", "overwrite"),
    ("s3_list_buckets", "Returns a list of all buckets owned by the authenticated sender.", "{}", "read", "list"),
    ("delete_bucket", "Deletes the S3 bucket.", r#"{"Bucket":{"type":"string"}}"#, "destructive", "delete"),
    ("lambda_invoke", "Invokes a Lambda function.", r#"{"FunctionName":{"type":"string"},"Payload":{"type":"string"}}"#, "execute", "invoke"),
    ("kubectl_apply", "Apply a configuration to a resource by file name.", r#"{"manifest":{"type":"string"},"namespace":{"type":"string"}}"#, "execute", "apply"),
    ("k8s_delete_pod", "Delete a pod in a namespace.", r#"{"name":{"type":"string"},"namespace":{"type":"string"}}"#, "destructive", "delete"),
    ("scale_deployment", "Scale a deployment to the given number of replicas.", r#"{"name":{"type":"string"},"replicas":{"type":"integer"}}"#, "write", "scale"),
    ("deploy_service", "Deploy a new revision of the service to production.", r#"{"service":{"type":"string"},"image":{"type":"string"}}"#, "execute", "deploy"),
    ("vercel_list_deployments", "List deployments for a project.", r#"{"projectId":{"type":"string"}}"#, "read", "list"),
    ("stop_instance", "Stops a running virtual machine.", r#"{"instance":{"type":"string"}}"#, "destructive", "stop"),
    ("create_vm", "Create a new virtual machine.", r#"{"name":{"type":"string"},"size":{"type":"string"}}"#, "write", "create"),
    ("cloudflare_purge_cache", "Purge all cached files for a zone.", r#"{"zone_id":{"type":"string"}}"#, "destructive", "purge"),
    // --- databases ----------------------------------------------------------------------------------------
    ("execute_sql", "Execute any SQL statement against the database.", r#"{"sql":{"type":"string"}}"#, "execute", "sql"),
    ("run_query", "Runs a read-only SQL query and returns rows.", r#"{"query":{"type":"string"}}"#, "read", "read-only"),
    ("mongo_find", "Find documents in a collection.", r#"{"collection":{"type":"string"},"filter":{"type":"object"}}"#, "read", "find"),
    ("mongo_insert_many", "Insert multiple documents into a collection.", r#"{"collection":{"type":"string"},"documents":{"type":"array"}}"#, "write", "insert"),
    ("drop_collection", "Removes a collection from the database.", r#"{"collection":{"type":"string"}}"#, "destructive", "drop"),
    ("redis_flushall", "Delete all the keys of all the existing databases.", "{}", "destructive", "flush"),
    ("redis_set", "Set the string value of a key.", r#"{"key":{"type":"string"},"value":{"type":"string"}}"#, "write", "set"),
    ("supabase_create_branch", "Creates a development branch of the database.", r#"{"project_id":{"type":"string"}}"#, "write", "create"),
    ("list_tables", "List all tables in a schema.", r#"{"schema":{"type":"string"}}"#, "read", "list"),
    // --- shells and code --------------------------------------------------------------------------------------
    ("run_command", "Run a shell command on the host and return its output.", r#"{"command":{"type":"string"},"cwd":{"type":"string"}}"#, "execute", "shell"),
    ("bash", "Executes a bash command in a persistent session.", r#"{"command":{"type":"string"}}"#, "execute", "shell"),
    ("python_exec", "Execute Python code in a sandbox.", r#"{"code":{"type":"string"}}"#, "execute", "code"),
    ("kill_process", "Terminate a process by PID.", r#"{"pid":{"type":"integer"}}"#, "destructive", "kill"),
    ("list_processes", "List running processes.", "{}", "read", "list"),
    ("docker_run", "Create and start a container from an image.", r#"{"image":{"type":"string"}}"#, "execute", "run"),
    // --- files --------------------------------------------------------------------------------------------
    ("fs_delete_file", "Delete a file.", r#"{"path":{"type":"string"}}"#, "destructive", "delete"),
    ("write_text", "Write text to a file, overwriting it if it exists.", r#"{"path":{"type":"string"},"text":{"type":"string"}}"#, "destructive", "overwrite"),
    ("read_pdf", "Extract the text of a PDF document.", r#"{"path":{"type":"string"}}"#, "read", "read"),
    ("manage_file", "Read, write or delete files.", r#"{"action":{"type":"string","enum":["read","write","delete"]},"path":{"type":"string"}}"#, "destructive", "enum"),
    ("copy_file", "Copy a file to a new location.", r#"{"source":{"type":"string"},"destination":{"type":"string"}}"#, "write", "copy"),
    ("gdrive_search", "Search for files in Google Drive.", r#"{"query":{"type":"string"}}"#, "read", "search"),
    // --- browsers -----------------------------------------------------------------------------------------
    ("puppeteer_click", "Click an element on the page.", r#"{"selector":{"type":"string"}}"#, "execute", "click"),
    ("puppeteer_evaluate", "Execute JavaScript in the browser console.", r#"{"script":{"type":"string"}}"#, "execute", "code"),
    ("puppeteer_screenshot", "Take a screenshot of the current page or a specific element.", r#"{"name":{"type":"string"},"selector":{"type":"string"}}"#, "read", "screenshot"),
    ("browser_fill", "Fill out an input field.", r#"{"selector":{"type":"string"},"value":{"type":"string"}}"#, "execute", "ui"),
    ("navigate", "Navigate the browser to a URL.", r#"{"url":{"type":"string"}}"#, "read", "navigate"),
    ("get_page_text", "Get the visible text of the current page.", "{}", "read", "get"),
    // --- messaging ----------------------------------------------------------------------------------------
    ("send_email", "Send an email to one or more recipients.", r#"{"to":{"type":"array"},"subject":{"type":"string"},"body":{"type":"string"}}"#, "execute", "message"),
    ("gmail_create_draft", "Create a draft email without sending it.", r#"{"to":{"type":"string"},"body":{"type":"string"}}"#, "write", "draft"),
    ("gmail_search_messages", "Search emails with Gmail query syntax.", r#"{"q":{"type":"string"}}"#, "read", "search"),
    ("chat_postMessage", "Posts a message to a channel.", r#"{"channel":{"type":"string"},"text":{"type":"string"}}"#, "execute", "message"),
    ("discord_send", "Send a message to a Discord channel.", r#"{"channelId":{"type":"string"},"message":{"type":"string"}}"#, "execute", "message"),
    ("twilio_send_sms", "Send an SMS message.", r#"{"to":{"type":"string"},"body":{"type":"string"}}"#, "execute", "message"),
    ("telegram_get_updates", "Receive incoming updates.", r#"{"offset":{"type":"integer"}}"#, "read", "get"),
    ("delete_message", "Delete a message from a channel.", r#"{"channel":{"type":"string"},"ts":{"type":"string"}}"#, "destructive", "delete"),
    // --- marketing and CRM ---------------------------------------------------------------------------------
    ("mailchimp_send_campaign", "Send a campaign to its audience right now.", r#"{"campaign_id":{"type":"string"}}"#, "execute", "message"),
    ("hubspot_create_contact", "Create a contact in HubSpot CRM.", r#"{"email":{"type":"string"},"firstname":{"type":"string"}}"#, "write", "create"),
    ("hubspot_get_contacts", "Retrieve contacts with pagination.", r#"{"limit":{"type":"integer"}}"#, "read", "get"),
    ("unsubscribe_contact", "Remove a contact from a mailing list.", r#"{"list_id":{"type":"string"},"email":{"type":"string"}}"#, "destructive", "remove"),
    ("publish_post", "Publish a post to the company's LinkedIn page.", r#"{"text":{"type":"string"}}"#, "execute", "publish"),
    // --- spreadsheets and docs ------------------------------------------------------------------------------
    ("sheets_get_values", "Returns a range of values from a spreadsheet.", r#"{"spreadsheetId":{"type":"string"},"range":{"type":"string"}}"#, "read", "get"),
    ("sheets_update_values", "Sets values in a range of a spreadsheet.", r#"{"spreadsheetId":{"type":"string"},"range":{"type":"string"},"values":{"type":"array"}}"#, "write", "update"),
    ("sheets_clear_values", "Clears values from a spreadsheet range.", r#"{"spreadsheetId":{"type":"string"},"range":{"type":"string"}}"#, "destructive", "clear"),
    ("docs_append_text", "Append text to the end of a document.", r#"{"documentId":{"type":"string"},"text":{"type":"string"}}"#, "write", "append"),
    ("airtable_delete_records", "Deletes records from a table.", r#"{"records":{"type":"array"}}"#, "destructive", "delete"),
    ("calendar_create_event", "Create a calendar event and invite attendees.", r#"{"summary":{"type":"string"},"attendees":{"type":"array"}}"#, "write", "create"),
    ("list_events", "List upcoming events.", r#"{"calendarId":{"type":"string"}}"#, "read", "list"),
    // --- identity and secrets ----------------------------------------------------------------------------------
    ("revoke_token", "Revoke an access token.", r#"{"token_id":{"type":"string"}}"#, "destructive", "revoke"),
    ("get_secret_value", "Retrieve the value of a secret.", r#"{"SecretId":{"type":"string"}}"#, "read", "get"),
    ("create_user", "Create a new user account.", r#"{"username":{"type":"string"},"email":{"type":"string"}}"#, "write", "create"),
    ("reset_password", "Reset a user's password and invalidate existing sessions.", r#"{"user_id":{"type":"string"}}"#, "destructive", "reset"),
    // --- misc ---------------------------------------------------------------------------------------------
    ("weather_forecast", "Get the weather forecast for a location.", r#"{"latitude":{"type":"number"},"longitude":{"type":"number"}}"#, "read", "get"),
    ("wikipedia", "Look up a topic on Wikipedia and return the summary.", r#"{"topic":{"type":"string"}}"#, "read", "lookup"),
    ("http_request", "Make an HTTP request.", r#"{"url":{"type":"string"},"method":{"type":"string","enum":["GET","POST","PUT","DELETE"]}}"#, "destructive", "enum"),
    ("memory_store", "Store a memory for later recall.", r#"{"content":{"type":"string"}}"#, "write", "store"),
    ("generate_image", "Generate an image from a text prompt.", r#"{"prompt":{"type":"string"}}"#, "write", "generate"),
    ("translate_text", "Translate text into another language.", r#"{"text":{"type":"string"},"target":{"type":"string"}}"#, "read", "compute"),
    // --- a second batch, written before the rules that handle them ------------------------------------
    ("get_weather", "Get current weather for a city", r#"{"city":{"type":"string"}}"#, "read", "get"),
    ("createPage", "Create a new page in Confluence.", r#"{"spaceKey":{"type":"string"},"title":{"type":"string"},"body":{"type":"string"}}"#, "write", "create"),
    ("confluence_delete_page", "Delete a Confluence page by ID.", r#"{"pageId":{"type":"string"}}"#, "destructive", "delete"),
    ("notion_append_block_children", "Append new children blocks to a parent block.", r#"{"block_id":{"type":"string"},"children":{"type":"string"}}"#, "write", "append"),
    ("todoist_complete_task", "Mark a task as completed.", r#"{"task_id":{"type":"string"}}"#, "write", "complete"),
    ("close_issue", "Close an issue.", r#"{"issue":{"type":"string"}}"#, "write", "close"),
    ("lock_issue", "Lock an issue's conversation.", r#"{"issue":{"type":"string"}}"#, "write", "lock"),
    ("set_labels", "Replace all labels on an issue.", r#"{"labels":{"type":"string"}}"#, "write", "labels"),
    ("remove_label", "Remove a label from an issue.", r#"{"label":{"type":"string"}}"#, "destructive", "remove"),
    ("update_file", "Update the content of a file in the repository with a commit.", r#"{"path":{"type":"string"},"content":{"type":"string"},"sha":{"type":"string"}}"#, "write", "commit"),
    ("search_code", "Search for code across repositories.", r#"{"q":{"type":"string"}}"#, "read", "search"),
    ("list_workflow_runs", "List workflow runs for a repository.", r#"{"repo":{"type":"string"}}"#, "read", "list"),
    ("cancel_workflow_run", "Cancel a workflow run in progress.", r#"{"run_id":{"type":"string"}}"#, "destructive", "cancel"),
    ("dispatch_workflow", "Create a workflow dispatch event to trigger a workflow.", r#"{"workflow":{"type":"string"},"ref":{"type":"string"}}"#, "execute", "trigger"),
    ("create_release", "Create a release for a tag.", r#"{"tag_name":{"type":"string"},"name":{"type":"string"}}"#, "write", "create"),
    ("azure_vm_restart", "Restart a virtual machine.", r#"{"vm":{"type":"string"}}"#, "execute", "restart"),
    ("gcloud_run_deploy", "Deploy a container image to Cloud Run.", r#"{"image":{"type":"string"},"service":{"type":"string"}}"#, "execute", "deploy"),
    ("terraform_plan", "Generate an execution plan showing what Terraform will change.", r#"{"dir":{"type":"string"}}"#, "read", "plan"),
    ("terraform_apply", "Apply the planned changes to infrastructure.", r#"{"dir":{"type":"string"}}"#, "execute", "apply"),
    ("terraform_destroy", "Destroy all remote objects managed by the configuration.", r#"{"dir":{"type":"string"}}"#, "destructive", "destroy"),
    ("postgres_list_schemas", "List all schemas in the database.", r#"{}"#, "read", "list"),
    ("bigquery_query", "Run a SQL query on BigQuery.", r#"{"sql":{"type":"string"}}"#, "execute", "sql"),
    ("snowflake_read_query", "Execute a SELECT query.", r#"{"query":{"type":"string"}}"#, "read", "select"),
    ("snowflake_write_query", "Execute an INSERT, UPDATE, or DELETE query.", r#"{"query":{"type":"string"}}"#, "destructive", "delete"),
    ("elasticsearch_delete_index", "Delete an index.", r#"{"index":{"type":"string"}}"#, "destructive", "delete"),
    ("es_search", "Perform a search against an index.", r#"{"index":{"type":"string"},"query":{"type":"string"}}"#, "read", "search"),
    ("pinecone_upsert", "Upsert vectors into an index.", r#"{"vectors":{"type":"string"}}"#, "write", "upsert"),
    ("qdrant_find", "Find points similar to the query.", r#"{"query":{"type":"string"}}"#, "read", "find"),
    ("exec_in_pod", "Execute a command in a running container.", r#"{"pod":{"type":"string"},"command":{"type":"string"}}"#, "execute", "exec"),
    ("ssh_exec", "Run a command on a remote host over SSH.", r#"{"host":{"type":"string"},"command":{"type":"string"}}"#, "execute", "shell"),
    ("write_to_terminal", "Write text to the active terminal and press enter.", r#"{"text":{"type":"string"}}"#, "execute", "terminal"),
    ("read_terminal_output", "Read the output of the terminal.", r#"{}"#, "read", "read"),
    ("start_process", "Start a new process with the given command line.", r#"{"command":{"type":"string"}}"#, "execute", "process"),
    ("create_pr_review_comment", "Add a review comment on a pull request.", r#"{"body":{"type":"string"}}"#, "write", "comment"),
    ("slack_send_dm", "Send a direct message to a user.", r#"{"user":{"type":"string"},"text":{"type":"string"}}"#, "execute", "message"),
    ("teams_post_channel_message", "Post a message in a Teams channel.", r#"{"channel":{"type":"string"},"content":{"type":"string"}}"#, "execute", "message"),
    ("whatsapp_send_template", "Send a template message to a phone number.", r#"{"to":{"type":"string"},"template":{"type":"string"}}"#, "execute", "message"),
    ("intercom_reply_conversation", "Reply to a conversation as an admin.", r#"{"conversation_id":{"type":"string"},"body":{"type":"string"}}"#, "execute", "reply"),
    ("zendesk_update_ticket", "Update a ticket's status, priority or assignee.", r#"{"ticket_id":{"type":"string"},"status":{"type":"string"}}"#, "write", "update"),
    ("salesforce_soql_query", "Execute a SOQL query and return records.", r#"{"query":{"type":"string"}}"#, "read", "query"),
    ("salesforce_delete_record", "Delete a record.", r#"{"sobject":{"type":"string"},"id":{"type":"string"}}"#, "destructive", "delete"),
    ("shopify_create_product", "Create a product with variants.", r#"{"title":{"type":"string"},"variants":{"type":"string"}}"#, "write", "create"),
    ("shopify_update_price", "Update the price of a product variant.", r#"{"variant_id":{"type":"string"},"price":{"type":"string"}}"#, "financial", "price"),
    ("shopify_create_order", "Create an order and charge the customer.", r#"{"line_items":{"type":"string"}}"#, "financial", "charge"),
    ("shopify_get_orders", "Get recent orders.", r#"{"limit":{"type":"string"}}"#, "read", "get"),
    ("issue_refund", "Issue a refund for an order.", r#"{"order_id":{"type":"string"},"amount":{"type":"string"}}"#, "financial", "refund"),
    ("apply_discount", "Apply a discount code to a cart.", r#"{"cart_id":{"type":"string"},"code":{"type":"string"}}"#, "financial", "discount"),
    ("lemonsqueezy_create_checkout", "Create a checkout for a product variant.", r#"{"variant_id":{"type":"string"}}"#, "financial", "checkout"),
    ("plaid_get_transactions", "Get transactions for an account.", r#"{"account_id":{"type":"string"}}"#, "read", "get"),
    ("wise_create_transfer", "Create a transfer to a recipient.", r#"{"quote_id":{"type":"string"},"target_account":{"type":"string"}}"#, "financial", "transfer"),
    ("coinbase_send", "Send crypto to an address.", r#"{"to":{"type":"string"},"amount":{"type":"string"},"currency":{"type":"string"}}"#, "financial", "crypto"),
    ("alpaca_cancel_order", "Cancel an open order.", r#"{"order_id":{"type":"string"}}"#, "financial", "trade"),
    ("ynab_create_transaction", "Create a transaction in a budget.", r#"{"budget_id":{"type":"string"},"amount":{"type":"string"}}"#, "financial", "transaction"),
    ("google_sheets_delete_sheet", "Delete a sheet from a spreadsheet.", r#"{"sheet_id":{"type":"string"}}"#, "destructive", "delete"),
    ("excel_write_range", "Write values to a range, replacing existing cell contents.", r#"{"range":{"type":"string"},"values":{"type":"string"}}"#, "destructive", "overwrite"),
    ("excel_read_range", "Read values from a range.", r#"{"range":{"type":"string"}}"#, "read", "read"),
    ("format_cells", "Apply formatting to a range of cells.", r#"{"range":{"type":"string"},"format":{"type":"string"}}"#, "write", "format"),
    ("playwright_navigate", "Navigate to a URL.", r#"{"url":{"type":"string"}}"#, "read", "navigate"),
    ("playwright_fill", "Fill out an input field.", r#"{"selector":{"type":"string"},"value":{"type":"string"}}"#, "execute", "ui"),
    ("computer", "Use a mouse and keyboard to interact with a computer, and take screenshots.", r#"{"action":{"enum":["key","type","mouse_move","left_click","screenshot"]}}"#, "execute", "ui"),
    ("browser_go_back", "Go back to the previous page.", r#"{}"#, "read", "navigate"),
    ("get_user_info", "Returns the authenticated user's profile.", r#"{}"#, "read", "get"),
    ("sentry_resolve_issue", "Mark an issue as resolved.", r#"{"issue_id":{"type":"string"}}"#, "write", "resolve"),
    ("pagerduty_create_incident", "Create an incident and page the on-call responder.", r#"{"service":{"type":"string"},"title":{"type":"string"}}"#, "execute", "page"),
    ("datadog_mute_monitor", "Mute a monitor.", r#"{"monitor_id":{"type":"string"}}"#, "write", "mute"),
    ("grafana_query_prometheus", "Query Prometheus using PromQL.", r#"{"expr":{"type":"string"}}"#, "read", "query"),
    ("create_api_key", "Create a new API key.", r#"{"name":{"type":"string"}}"#, "write", "create"),
    ("delete_api_key", "Delete an API key.", r#"{"key_id":{"type":"string"}}"#, "destructive", "delete"),
    ("rotate_secret", "Rotate a secret, invalidating the old value.", r#"{"secret_id":{"type":"string"}}"#, "destructive", "invalidate"),
    ("add_user_to_group", "Add a user to a group.", r#"{"user":{"type":"string"},"group":{"type":"string"}}"#, "write", "add"),
    ("remove_user_from_org", "Remove a member from an organization.", r#"{"user":{"type":"string"}}"#, "destructive", "remove"),
    ("youtube_upload_video", "Upload a video to YouTube.", r#"{"file":{"type":"string"},"title":{"type":"string"}}"#, "execute", "publish"),
    ("twitter_post_tweet", "Post a tweet.", r#"{"text":{"type":"string"}}"#, "execute", "tweet"),
    ("reddit_get_posts", "Get hot posts from a subreddit.", r#"{"subreddit":{"type":"string"}}"#, "read", "get"),
    ("download_file", "Download a file from a URL to local disk.", r#"{"url":{"type":"string"},"path":{"type":"string"}}"#, "write", "download"),
    ("screenshot_url", "Capture a screenshot of a web page.", r#"{"url":{"type":"string"}}"#, "read", "screenshot"),
    ("run_tests", "Run the project's test suite.", r#"{"path":{"type":"string"}}"#, "execute", "run"),
    ("lint_file", "Run the linter on a file.", r#"{"path":{"type":"string"}}"#, "read", "lint"),
    ("format_file", "Format a file in place with prettier.", r#"{"path":{"type":"string"}}"#, "write", "format"),
    ("npm_install", "Install an npm package.", r#"{"name":{"type":"string"}}"#, "execute", "install"),
    ("create_directory", "Create a directory.", r#"{"path":{"type":"string"}}"#, "write", "create"),
    ("move_to_trash", "Move a file to the trash.", r#"{"path":{"type":"string"}}"#, "destructive", "trash"),
    ("empty_trash", "Permanently delete everything in the trash.", r#"{}"#, "destructive", "purge"),
    ("purge_queue", "Delete all messages in a queue.", r#"{"queue_url":{"type":"string"}}"#, "destructive", "purge"),
    ("sqs_send_message", "Send a message to an SQS queue.", r#"{"queue_url":{"type":"string"},"body":{"type":"string"}}"#, "write", "enqueue"),
    ("kafka_produce", "Produce a message to a Kafka topic.", r#"{"topic":{"type":"string"},"value":{"type":"string"}}"#, "write", "produce"),
    ("set_feature_flag", "Turn a feature flag on or off in production.", r#"{"flag":{"type":"string"},"enabled":{"type":"string"}}"#, "write", "toggle"),
    ("create_webhook", "Create a webhook that posts events to a URL.", r#"{"url":{"type":"string"},"events":{"type":"string"}}"#, "write", "create"),
    ("sequential_thinking", "A tool for step-by-step reasoning.", r#"{"thought":{"type":"string"}}"#, "read", "think"),
    ("calculator", "Evaluate a mathematical expression.", r#"{"expression":{"type":"string"}}"#, "read", "math"),
    ("get_env", "Returns environment variables.", r#"{}"#, "read", "env"),
    ("note_delete", "Delete a note.", r#"{"id":{"type":"string"}}"#, "destructive", "delete"),
    ("notes", "Manage notes.", r#"{"operation":{"enum":["list","create","update","delete"]}}"#, "destructive", "enum"),
    ("db", "Database operations.", r#"{"op":{"description":"One of: 'select', 'insert', 'drop'"}}"#, "destructive", "enum"),
    ("upsert_memory", "Create or update a memory.", r#"{"key":{"type":"string"},"value":{"type":"string"}}"#, "write", "upsert"),
    ("forget", "Forget a stored memory.", r#"{"id":{"type":"string"}}"#, "destructive", "forget"),
    ("book_flight", "Book a flight and charge the traveller's card.", r#"{"flight_id":{"type":"string"}}"#, "financial", "charge"),
    ("reserve_table", "Reserve a table at a restaurant.", r#"{"restaurant":{"type":"string"},"time":{"type":"string"}}"#, "write", "reserve"),
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
