//! `ironbridge flows apply`: puts flow documents kept in files (an organization's own
//! repository) to a running Ironbridge, each by its key (`PUT /v1/flows/{key}`), so applying
//! the same files again changes nothing. Placeholders such as the examples' `conn_NETSUITE`
//! are replaced with `--set conn_NETSUITE=conn_…`.

use std::path::PathBuf;

use serde_json::Value;

/// What to apply, and where.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Flow documents (`.json` files, or directories of them).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The Ironbridge API to apply them to.
    #[arg(long, env = "IRONBRIDGE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Replace a text in every document before it is sent (`--set conn_NETSUITE=conn_01h…`);
    /// may be repeated.
    #[arg(long = "set", value_name = "FROM=TO", value_parser = parse_replacement)]
    pub replacements: Vec<(String, String)>,
    /// Check each document with a dry run instead of saving it (nothing is written or sent).
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_replacement(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() => Ok((from.to_string(), to.to_string())),
        _ => Err(format!("`{s}` is not FROM=TO")),
    }
}

/// The documents named: files as given, directories' `.json` files by name.
fn documents(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in files {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The problems of a refused document, one per line.
fn problems(body: &Value) -> String {
    let error = &body["error"];
    match error["details"]["errors"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|p| {
                format!(
                    "  {}: {}",
                    p["path"].as_str().unwrap_or(""),
                    p["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => format!(
            "  {}: {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("")
        ),
    }
}

/// Applies each document; fails (after trying them all) if any was refused.
pub async fn run(args: ApplyArgs, key: Option<String>) -> anyhow::Result<()> {
    let key = key.ok_or_else(|| {
        anyhow::anyhow!("set IRONBRIDGE_API_KEY to an admin API key of the organization")
    })?;
    let http = reqwest::Client::new();
    let base = args.url.trim_end_matches('/');
    let mut refused = 0;
    for path in documents(&args.files)? {
        let mut text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (from, to) in &args.replacements {
            text = text.replace(from.as_str(), to);
        }
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
        let Some(flow) = doc["key"].as_str().map(str::to_string) else {
            eprintln!(
                "{}: refused\n  key: a flow document names its `key`",
                path.display()
            );
            refused += 1;
            continue;
        };
        let request = if args.dry_run {
            http.post(format!("{base}/v1/flows/dry-run"))
                .json(&serde_json::json!({ "flow": doc }))
        } else {
            http.put(format!("{base}/v1/flows/{flow}")).json(&doc)
        };
        let response = request
            .bearer_auth(&key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{base}: {e}"))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200 if args.dry_run => {
                let steps = body["steps"].as_array().cloned().unwrap_or_default();
                let summary: Vec<String> = steps
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {}→{}{}",
                            s["id"].as_str().unwrap_or(""),
                            s["items_in"],
                            s["items_out"],
                            match s["failed"].as_u64() {
                                Some(0) | None => String::new(),
                                Some(n) => format!(" ({n} failed)"),
                            }
                        )
                    })
                    .collect();
                println!("{flow}: checked; {}", summary.join(", "));
            }
            201 => println!("{flow}: created (version {})", body["version"]),
            200 => println!("{flow}: version {}", body["version"]),
            _ => {
                eprintln!(
                    "{}: refused ({status})\n{}",
                    path.display(),
                    problems(&body)
                );
                refused += 1;
            }
        }
    }
    anyhow::ensure!(refused == 0, "{refused} flow document(s) refused");
    Ok(())
}
