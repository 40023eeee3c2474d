//! `pidrop user …` and `pidrop token …`: the accounts file edited from the command line, with
//! the same `--dir`/`--users` (and `PIDROP_*`) as the server, so that the running server sees
//! the change at once. A password comes from a prompt without echo, or from one line of stdin
//! when stdin is not a terminal (scripts, `LoadCredential=` set-ups).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::accounts::{valid_name, Accounts, Token, User};
use super::{password, Role};
use crate::config::{self, parse_duration_days, Command, Config};

const USAGE: &str = "usage: pidrop user add NAME --role ROLE | user passwd NAME | user remove NAME | user list\n       pidrop token add NAME --role ROLE [--expires 30d] | token list | token revoke NAME\n       (roles: admin, member, uploader, viewer; plus --dir/--users as for the server)";

/// The accounts file a configuration names: `--users`, else the service's credential
/// (`$CREDENTIALS_DIRECTORY/users`, systemd's `LoadCredential=`), else `.pidrop/users` in the
/// upload dir.
pub fn users_file(cfg: &Config) -> PathBuf {
    if let Some(p) = &cfg.users {
        return p.clone();
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let p = PathBuf::from(dir).join("users");
        if p.exists() {
            return p;
        }
    }
    cfg.dir.join(".pidrop").join("users")
}

/// Runs `pidrop user|token …` (`args` without the program name). The exit code: 0, 1 on
/// failure, 2 on bad usage.
pub fn run(args: Vec<String>) -> u8 {
    match run_inner(args) {
        Ok(()) => 0,
        Err((code, msg)) => {
            eprintln!("pidrop: {msg}");
            code
        }
    }
}

type Failure = (u8, String);

fn usage(why: &str) -> Failure {
    (2, format!("{why}\n{USAGE}"))
}

fn run_inner(args: Vec<String>) -> Result<(), Failure> {
    let mut it = args.into_iter();
    let (kind, verb) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
    let mut name = None;
    let mut role = None;
    let mut expires = None;
    let mut rest = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--role" => role = Some(it.next().ok_or_else(|| usage("--role needs a value"))?),
            "--expires" => {
                expires = Some(it.next().ok_or_else(|| usage("--expires needs a value"))?)
            }
            s if s.starts_with("--") => {
                rest.push(a.clone());
                if !s.contains('=') {
                    rest.extend(it.next());
                }
            }
            _ if name.is_none() => name = Some(a),
            _ => return Err(usage(&format!("unexpected {a:?}"))),
        }
    }
    let cfg = match config::parse(rest, |k| std::env::var(k).ok()) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(_) => return Err(usage("")),
        Err(e) => return Err((2, e.to_string())),
    };
    let path = users_file(&cfg);
    let mut accounts = Accounts::load(&path).map_err(|e| (1, e))?;
    let role = role
        .map(|r| Role::parse(&r).ok_or_else(|| usage(&format!("unknown role {r:?}"))))
        .transpose()?;
    let changed = match (kind.as_str(), verb.as_str()) {
        ("user", "list") | ("token", "list") => {
            list(&accounts, &kind);
            false
        }
        ("user", "add") => add_user(
            &mut accounts,
            need(name)?,
            role.ok_or_else(|| usage("--role is needed"))?,
        )?,
        ("user", "passwd") => passwd(&mut accounts, &need(name)?)?,
        ("user", "remove") => remove(&mut accounts, &need(name)?, false)?,
        ("token", "add") => add_token(
            &mut accounts,
            need(name)?,
            role.ok_or_else(|| usage("--role is needed"))?,
            expires,
        )?,
        ("token", "revoke") => remove(&mut accounts, &need(name)?, true)?,
        _ => return Err(usage("unknown command")),
    };
    if changed {
        accounts
            .save(&path)
            .map_err(|e| (1, format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn need(name: Option<String>) -> Result<String, Failure> {
    let name = name.ok_or_else(|| usage("a NAME is needed"))?;
    if !valid_name(&name) {
        return Err(usage(&format!(
            "{name:?} is not a valid name (letters, digits, . _ - @)"
        )));
    }
    Ok(name)
}

fn taken(a: &Accounts, name: &str) -> bool {
    a.users.iter().any(|u| u.name == name) || a.tokens.iter().any(|t| t.name == name)
}

fn list(a: &Accounts, kind: &str) {
    if kind == "user" {
        for u in &a.users {
            println!("{} {}", u.name, u.role.name());
        }
        return;
    }
    for t in &a.tokens {
        let exp = t.expires.map_or("never".to_string(), |e| {
            crate::time::rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(e))
        });
        println!("{} {} expires {exp}", t.name, t.role.name());
    }
}

/// A password: twice at a prompt without echo, or one line of stdin.
fn read_password() -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| (1, e.to_string()))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        return if pw.is_empty() {
            Err((1, "an empty password".into()))
        } else {
            Ok(pw)
        };
    }
    let ask = |prompt: &str| -> Result<String, Failure> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let line = crate::sys::read_line_without_echo().map_err(|e| (1, e.to_string()))?;
        eprintln!();
        Ok(line)
    };
    let first = ask("password: ")?;
    if first.is_empty() || ask("again: ")? != first {
        return Err((1, "the passwords are empty or differ".into()));
    }
    Ok(first)
}

fn add_user(a: &mut Accounts, name: String, role: Role) -> Result<bool, Failure> {
    if taken(a, &name) {
        return Err((
            1,
            format!("{name} exists (pidrop user passwd {name} changes a password)"),
        ));
    }
    let pw = read_password()?;
    let hash = hash_calibrated(&pw)?;
    println!("added user {name} ({})", role.name());
    a.users.push(User { name, role, hash });
    Ok(true)
}

fn passwd(a: &mut Accounts, name: &str) -> Result<bool, Failure> {
    let pw = read_password()?;
    let hash = hash_calibrated(&pw)?;
    let user = a
        .users
        .iter_mut()
        .find(|u| u.name == name)
        .ok_or((1, format!("no user {name}")))?;
    user.hash = hash;
    println!("password of {name} changed");
    Ok(true)
}

/// Hashes at the cost calibrated here, and says what it is.
fn hash_calibrated(pw: &str) -> Result<String, Failure> {
    let cost = password::calibrate();
    let started = Instant::now();
    let h = password::hash(pw, cost).map_err(|e| (1, e))?;
    eprintln!(
        "argon2id, {} MiB, {} passes: {} ms on this machine",
        cost.m_kib / 1024,
        cost.t,
        started.elapsed().as_millis()
    );
    Ok(h)
}

fn remove(a: &mut Accounts, name: &str, token: bool) -> Result<bool, Failure> {
    let before = a.users.len() + a.tokens.len();
    if token {
        a.tokens.retain(|t| t.name != name);
    } else {
        a.users.retain(|u| u.name != name);
    }
    if a.users.len() + a.tokens.len() == before {
        return Err((
            1,
            format!("no {} {name}", if token { "token" } else { "user" }),
        ));
    }
    println!("{} {name} removed", if token { "token" } else { "user" });
    Ok(true)
}

fn add_token(
    a: &mut Accounts,
    name: String,
    role: Role,
    expires: Option<String>,
) -> Result<bool, Failure> {
    if taken(a, &name) {
        return Err((1, format!("{name} exists")));
    }
    let expires = match expires {
        None => None,
        Some(e) => {
            let d = parse_duration_days(&e)
                .ok_or_else(|| usage(&format!("invalid --expires {e:?} (e.g. 30d, 12h)")))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Some((now + d).as_secs())
        }
    };
    let secret = crate::storage::random_bytes::<24>().map_err(|e| (1, e.to_string()))?;
    let token = crate::storage::hex(&secret);
    let sha256 = crate::storage::sha256_hex(token.as_bytes());
    a.tokens.push(Token {
        name: name.clone(),
        role,
        sha256,
        expires,
    });
    eprintln!(
        "token {name} ({}): shown once, keep it; send it as `Authorization: Bearer <token>`",
        role.name()
    );
    println!("{token}");
    Ok(true)
}

/// First start of a server that needs accounts: when the accounts file holds none, an `admin`
/// account with a random password is made (only its hash is stored) and the password is
/// returned, to be printed once. `None` when an account exists.
pub fn first_admin(path: &std::path::Path) -> Result<Option<String>, String> {
    let mut a = Accounts::load(path)?;
    if !a.users.is_empty() || !a.tokens.is_empty() {
        return Ok(None);
    }
    let pw = readable_password()?;
    let hash = password::hash(&pw, password::calibrate())?;
    a.users.push(User {
        name: "admin".into(),
        role: Role::Admin,
        hash,
    });
    a.save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Some(pw))
}

/// 80 random bits as four groups of four from an alphabet without look-alikes (no l, o, 0, 1):
/// easy to type on a phone.
fn readable_password() -> Result<String, String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes = crate::storage::random_bytes::<16>().map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(ALPHABET[usize::from(b % 32)] as char);
    }
    Ok(out)
}
