//! Configuration files. Every service takes its settings from flags and
//! `TESSERA_*` environment variables (clap); a `--config FILE` (or
//! `TESSERA_CONFIG=FILE`) adds a third source: a file of `TESSERA_X=value`
//! lines, loaded into the environment before the flags are parsed. Flags win
//! over the environment, the environment wins over the file.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    // `error`, not `source`: the message already carries it, and a chain
    // printed with its causes (`{:#}`) would repeat it.
    #[error("cannot read config file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: expected KEY=value, got {text:?}")]
    Syntax { path: PathBuf, line: usize, text: String },
}

/// Finds `--config FILE` / `--config=FILE` in `args`, else `TESSERA_CONFIG`.
pub fn config_path_from_args(args: &[String]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("TESSERA_CONFIG").map(PathBuf::from)
}

/// Parses `KEY=value` lines (blank lines and `#` comments allowed; values may
/// be quoted).
pub fn parse_config_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigFileError> {
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| ConfigFileError::Syntax {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        })?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigFileError::Syntax { path: path.to_path_buf(), line: i + 1, text: line.to_string() });
        }
        let value = value.trim().trim_matches('"').to_string();
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// Loads the config file named on the command line (if any) into the
/// environment, without overriding variables already set. Call it first
/// thing in `main`, before any thread (the tokio runtime included) starts.
pub fn load_config_file() -> Result<(), ConfigFileError> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = config_path_from_args(&args) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|error| ConfigFileError::Read { path: path.clone(), error })?;
    for (key, value) in parse_config_file(&path, &text)? {
        if std::env::var_os(&key).is_none() {
            // Single-threaded at this point (see above), so set_var is sound.
            std::env::set_var(key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_comments_and_quotes() {
        let text = "# comment\n\nTESSERA_REPLICATION=2\nTESSERA_LISTEN = \"127.0.0.1:1\"\n";
        let pairs = parse_config_file(Path::new("x"), text).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("TESSERA_REPLICATION".to_string(), "2".to_string()),
                ("TESSERA_LISTEN".to_string(), "127.0.0.1:1".to_string())
            ]
        );
        assert!(parse_config_file(Path::new("x"), "no equals sign").is_err());
        assert!(parse_config_file(Path::new("x"), "bad key=1").is_err());
    }

    #[test]
    fn finds_the_path_in_args() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(config_path_from_args(&args(&["bin", "--config", "a.env"])), Some(PathBuf::from("a.env")));
        assert_eq!(config_path_from_args(&args(&["bin", "--config=b.env"])), Some(PathBuf::from("b.env")));
    }
}
