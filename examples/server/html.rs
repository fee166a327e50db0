//! Tiny server-rendered HTML: every dynamic value goes through [`esc`].

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page around `body` (already escaped).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\">\
<title>{}</title><style>\
body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}\
form p{{margin:.4rem 0}} label{{display:inline-block;width:7rem}}\
table{{border-collapse:collapse;margin:.5rem 0}} td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;font-size:.9rem}}\
.done{{background:#dfd}} .todo{{color:#999}} .err{{color:#a00}} button{{font-size:1rem;padding:.3rem 1rem}}\
</style></head><body>\n<h1>{}</h1>\n{}\n</body></html>\n",
        esc(title),
        esc(title),
        body
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert!(!page("<b>", "").contains("<b>"));
    }
}
