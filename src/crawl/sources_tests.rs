use super::*;

#[test]
fn split_command_handles_quotes_and_escapes() {
    assert_eq!(split_command("npx -y pkg").unwrap(), ["npx", "-y", "pkg"]);
    assert_eq!(
        split_command(r#"python3 "my server.py" 'a b' c\ d"#).unwrap(),
        ["python3", "my server.py", "a b", "c d"]
    );
    assert_eq!(split_command(r#"echo "say \"hi\"" ''"#).unwrap(), ["echo", r#"say "hi""#, ""]);
    assert!(split_command("echo 'open").is_err());
    assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
}

#[test]
fn names_come_from_the_package_not_the_launcher() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        name_for_command("npx", &args(&["-y", "@modelcontextprotocol/server-memory@2025.4.25"])),
        "server-memory"
    );
    assert_eq!(name_for_command("uvx", &args(&["mcp-server-time==2025.9.25"])), "mcp-server-time");
    assert_eq!(name_for_command("/usr/bin/python3", &args(&["servers/shop.py"])), "shop");
    assert_eq!(name_for_command("/opt/bin/toolwarden", &args(&["demo-server"])), "toolwarden");
    assert_eq!(name_for_url("http://127.0.0.1:8931/mcp"), "127.0.0.1:8931");
}

#[test]
fn headers_need_a_colon() {
    assert_eq!(parse_header("Authorization: Bearer x:y").unwrap(), ("Authorization".into(), "Bearer x:y".into()));
    assert!(parse_header("nocolon").is_err());
}

#[test]
fn jsonc_comments_and_trailing_commas_are_stripped() {
    let text = "{\n // c\n \"a\": \"x // not a comment\", /* b */ \"b\": [1, 2,],\n}";
    let v: Value = serde_json::from_str(&strip_jsonc(text)).unwrap();
    assert_eq!(v["a"], "x // not a comment");
    assert_eq!(v["b"], serde_json::json!([1, 2]));
    // A trailing comma followed by a comment, as VS Code users write them.
    let text = "{\n \"s\": { \"a\": 1 }, // last\n}";
    let v: Value = serde_json::from_str(&strip_jsonc(text)).unwrap();
    assert_eq!(v["s"]["a"], 1);
}

#[test]
fn the_committed_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/servers.schema.json");
    let current = servers_schema();
    if std::env::var_os("TOOLWARDEN_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "schemas/servers.schema.json is stale; regenerate it with TOOLWARDEN_UPDATE_SCHEMAS=1 cargo test --lib schema"
    );
}

#[test]
fn registry_packages_become_commands_and_remotes_urls() {
    let server: RegistryServer = serde_json::from_value(serde_json::json!({
        "name": "io.github.example/weather",
        "version": "1.0.0",
        "packages": [
            {"registryType": "npm", "identifier": "@example/weather", "version": "1.0.0",
             "transport": {"type": "stdio"},
             "packageArguments": [{"type": "named", "name": "--units", "value": "metric"}],
             "environmentVariables": [{"name": "WEATHER_KEY", "isRequired": true}]},
            {"registryType": "pypi", "identifier": "weather-mcp", "version": "1.0.0"},
            {"registryType": "oci", "identifier": "ghcr.io/example/weather"}
        ],
        "remotes": [{"type": "streamable-http", "url": "https://weather.example/mcp"}, {"type": "sse", "url": "https://x/sse"}]
    }))
    .unwrap();
    let (specs, notes) = registry_specs(&server);
    let targets: Vec<String> = specs.iter().map(ServerSpec::target).collect();
    assert_eq!(
        targets,
        ["npx -y @example/weather@1.0.0 --units metric", "uvx weather-mcp==1.0.0", "https://weather.example/mcp"]
    );
    assert!(notes.iter().any(|n| n.contains("WEATHER_KEY")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("oci")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("SSE")), "{notes:?}");
}

#[test]
fn servers_files_need_exactly_one_of_command_and_url_and_reject_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ok = write(
        "ok.toml",
        "[servers.a]\ncommand = \"x\"\nargs = [\"1\"]\n[servers.b]\nurl = \"http://h/mcp\"\n[servers.c]\ncommand = \"y\"\ndisabled = true\n",
    );
    let sources = from_servers_file(&ok).unwrap();
    assert_eq!(sources.iter().map(|s| s.spec.target()).collect::<Vec<_>>(), ["x 1", "http://h/mcp"]);
    assert!(sources.iter().all(|s| !s.explicit));
    let both = write("both.json", r#"{"servers": {"a": {"command": "x", "url": "http://h"}}}"#);
    assert!(from_servers_file(&both).unwrap_err().to_string().contains("both `command` and `url`"));
    let neither = write("neither.json", r#"{"servers": {"a": {}}}"#);
    assert!(from_servers_file(&neither).unwrap_err().to_string().contains("needs `command` or `url`"));
    let typo = write("typo.toml", "[servers.a]\ncommand = \"x\"\nargz = []\n");
    assert!(from_servers_file(&typo).unwrap_err().to_string().contains("argz"));
}

#[test]
fn registry_names_ending_in_slashes_still_name_the_server() {
    // Found by the registry_page fuzz target: `name` ending in `/` gave a server with an empty name.
    for (name, expected) in [("io.github.x/server-time///", "server-time"), ("///", "///"), (" ", "registry-server")] {
        let page = serde_json::json!([{"name": name, "remotes": [{"type": "streamable-http", "url": "http://h/mcp"}]}]);
        let (entries, _) = registry_entries(page, "test").unwrap();
        assert_eq!(entries[0].source.spec.name, expected, "{name:?}");
    }
}
