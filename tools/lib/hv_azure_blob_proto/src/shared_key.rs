// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! SharedKey authorization of Azure Storage (the string-to-sign of the public
//! "Authorize with Shared Key" specification, version 2015-02-21 and later),
//! shared by the blob service, which verifies it, and the user library, which
//! signs with it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Decodes `a=b&c=d` into pairs (percent-decoding; `+` stays literal).
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

/// Percent-decodes a URL component (invalid UTF-8 is replaced).
pub fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The Azurite development account name.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// The Azurite development account key (public, documented).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A storage account and its key.
#[derive(Clone)]
pub struct Account {
    /// Account name.
    pub name: String,
    /// Decoded key bytes.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// An account from a base64 key.
    pub fn new(name: &str, key_b64: &str) -> Result<Self, base64::DecodeError> {
        Ok(Self {
            name: name.to_string(),
            key: B64.decode(key_b64)?,
        })
    }

    /// The Azurite development account.
    pub fn dev() -> Self {
        Self {
            name: DEV_ACCOUNT.to_string(),
            // The constant is valid base64.
            key: B64.decode(DEV_KEY).unwrap_or_default(),
        }
    }
}

/// The SharedKey string-to-sign of a request.
///
/// `headers` are (lower-case name, value) pairs; `raw_path` is the path as sent (encoded) and
/// `raw_query` the query as sent.
pub fn string_to_sign(
    method: &str,
    account: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
) -> String {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let content_length = match get("content-length") {
        "0" => "",
        v => v,
    };
    let date = if headers.iter().any(|(k, _)| k == "x-ms-date") {
        ""
    } else {
        get("date")
    };
    let mut s = String::with_capacity(256);
    for part in [
        method,
        get("content-encoding"),
        get("content-language"),
        content_length,
        get("content-md5"),
        get("content-type"),
        date,
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    ] {
        s.push_str(part);
        s.push('\n');
    }
    let mut ms: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| (k.as_str(), v.trim()))
        .collect();
    ms.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in ms {
        s.push_str(k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push('/');
    s.push_str(account);
    s.push_str(raw_path);
    let mut q: Vec<(String, String)> = parse_query(raw_query)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    q.sort();
    let mut i = 0;
    while i < q.len() {
        let name = q[i].0.clone();
        let mut values = Vec::new();
        while i < q.len() && q[i].0 == name {
            values.push(q[i].1.clone());
            i += 1;
        }
        s.push('\n');
        s.push_str(&name);
        s.push(':');
        s.push_str(&values.join(","));
    }
    s
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes any key length"),
    }
}

/// The `Authorization` header value for a request.
pub fn sign(account: &Account, string_to_sign: &str) -> String {
    let mut m = mac(&account.key);
    m.update(string_to_sign.as_bytes());
    format!(
        "SharedKey {}:{}",
        account.name,
        B64.encode(m.finalize().into_bytes())
    )
}

/// Checks an `Authorization` header against the string-to-sign (constant-time compare).
pub fn verify(account: &Account, authorization: &str, string_to_sign: &str) -> bool {
    let Some(rest) = authorization.strip_prefix("SharedKey ") else {
        return false;
    };
    let Some((name, sig)) = rest.trim().split_once(':') else {
        return false;
    };
    if name != account.name {
        return false;
    }
    let Ok(sig) = B64.decode(sig) else {
        return false;
    };
    let mut m = mac(&account.key);
    m.update(string_to_sign.as_bytes());
    m.verify_slice(&sig).is_ok()
}

/// The account named by an `Authorization: SharedKey name:sig` header.
pub fn authorization_account(authorization: &str) -> Option<String> {
    authorization
        .strip_prefix("SharedKey ")
        .and_then(|r| r.split_once(':'))
        .map(|(n, _)| pct_decode(n.trim()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn string_to_sign_follows_the_spec_layout() {
        let headers = h(&[
            ("x-ms-version", "2021-10-04"),
            ("x-ms-date", "Sat, 21 Nov 2026 10:00:00 GMT"),
            ("content-length", "0"),
            ("date", "ignored because x-ms-date is present"),
        ]);
        let s = string_to_sign(
            "GET",
            "acct",
            "/acct/c",
            "restype=container&comp=list&prefix=a%2Fb",
            &headers,
        );
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sat, 21 Nov 2026 10:00:00 GMT\nx-ms-version:2021-10-04\n/acct/acct/c\ncomp:list\nprefix:a/b\nrestype:container"
        );
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let a = Account::dev();
        let s = "PUT\n\n\n5\n\n\n\n\n\n\n\n\n/devstoreaccount1/devstoreaccount1/c/b";
        let auth = sign(&a, s);
        assert!(verify(&a, &auth, s));
        assert!(!verify(&a, &auth, &s.replace('5', "6")));
        let other = Account::new("devstoreaccount1", "AAAA").unwrap();
        assert!(!verify(&other, &auth, s));
        assert!(!verify(&a, "SharedKey devstoreaccount1:!!notbase64", s));
        assert_eq!(
            authorization_account(&auth).as_deref(),
            Some("devstoreaccount1")
        );
    }
}
