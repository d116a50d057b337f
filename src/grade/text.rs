//! Text utilities shared by graders: the `normalize` options, Markdown code
//! fence handling, and the short quoted snippets used in verdict reasons.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One text normalisation step, listed in a grader's `normalize:` field.
///
/// Steps always run in this fixed order, whatever order they are listed in:
/// `strip_code_fences`, `strip_punctuation`, `collapse_whitespace`, `trim`,
/// `lowercase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Remove leading and trailing whitespace.
    Trim,
    /// Lowercase (Unicode-aware).
    Lowercase,
    /// Replace every run of whitespace (including newlines) with one space.
    CollapseWhitespace,
    /// Delete ASCII punctuation and common Unicode quotes, dashes and ellipses.
    StripPunctuation,
    /// Delete Markdown ``` fence lines (with or without a language tag), keeping the fenced content.
    StripCodeFences,
}

impl Normalize {
    /// Bit used for this step in a [`NormalizeSet`].
    fn bit(self) -> u8 {
        match self {
            Normalize::Trim => 1,
            Normalize::Lowercase => 2,
            Normalize::CollapseWhitespace => 4,
            Normalize::StripPunctuation => 8,
            Normalize::StripCodeFences => 16,
        }
    }
}

/// A compiled set of normalisation steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NormalizeSet(u8);

impl NormalizeSet {
    /// Builds the set from the configured list, or `default` when the field
    /// was omitted.
    pub(crate) fn from_config(list: Option<&[Normalize]>, default: &[Normalize]) -> Self {
        Self(
            list.unwrap_or(default)
                .iter()
                .fold(0, |acc, n| acc | n.bit()),
        )
    }

    /// Whether `step` is enabled.
    fn has(self, step: Normalize) -> bool {
        self.0 & step.bit() != 0
    }

    /// Applies the enabled steps in their fixed order.
    pub(crate) fn apply(self, input: &str) -> Cow<'_, str> {
        let mut cur = Cow::Borrowed(input);
        if self.has(Normalize::StripCodeFences)
            && let Some(s) = strip_code_fences(&cur)
        {
            cur = Cow::Owned(s);
        }
        if self.has(Normalize::StripPunctuation) && cur.chars().any(is_punctuation) {
            cur = Cow::Owned(cur.chars().filter(|c| !is_punctuation(*c)).collect());
        }
        if self.has(Normalize::CollapseWhitespace) {
            cur = Cow::Owned(collapse_whitespace(&cur));
        }
        if self.has(Normalize::Trim) {
            cur = match cur {
                Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
                Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
            };
        }
        if self.has(Normalize::Lowercase) {
            cur = Cow::Owned(cur.to_lowercase());
        }
        cur
    }
}

/// Punctuation removed by `strip_punctuation`. The std library has no
/// Unicode punctuation class, so besides ASCII we list the characters LLMs
/// commonly emit (smart quotes, dashes, ellipsis, CJK/full-width marks).
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '‘' | '’'
                | '‚'
                | '‛'
                | '“'
                | '”'
                | '„'
                | '‟'
                | '«'
                | '»'
                | '‹'
                | '›'
                | '–'
                | '—'
                | '―'
                | '‐'
                | '‑'
                | '…'
                | '·'
                | '•'
                | '¡'
                | '¿'
                | '。'
                | '、'
                | '，'
                | '！'
                | '？'
                | '：'
                | '；'
                | '「'
                | '」'
                | '『'
                | '』'
                | '（'
                | '）'
                | '【'
                | '】'
        )
}

/// Replaces each whitespace run with a single space (ends are kept as one
/// space; `trim` is a separate step).
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_ws = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !in_ws {
                out.push(' ');
            }
            in_ws = true;
        } else {
            out.push(c);
            in_ws = false;
        }
    }
    out
}

/// Removes fence lines; `None` when there is no fence. A one-line fenced
/// span such as "```billing```" keeps its inner text.
fn strip_code_fences(s: &str) -> Option<String> {
    if !s.contains("```") {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        let trimmed = line.trim();
        match trimmed.strip_prefix("```") {
            None => out.push_str(line),
            Some(rest) => {
                let rest = rest.trim_start_matches('`');
                if let Some(inner) = rest.strip_suffix("```") {
                    let inner = inner.trim_end_matches('`');
                    out.push_str(inner);
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
                // Otherwise it is an opening fence (maybe with a language
                // tag) or a closing fence: drop the whole line.
            }
        }
    }
    Some(out)
}

/// If `s` (already trimmed) is a Markdown fenced block, returns its body and
/// whatever follows the closing fence; an unterminated fence (common when
/// the model hit its token limit) yields the rest of the text.
pub(crate) fn fenced_body(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("```")?;
    // Skip a language tag ("json", "JSON5") only when it is a word followed
    // by whitespace, so "```{...}```" keeps its body intact.
    let tag_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.')))
        .unwrap_or(rest.len());
    let after_tag = &rest[tag_len..];
    let rest = if tag_len > 0
        && rest.starts_with(|c: char| c.is_ascii_alphabetic())
        && after_tag.starts_with(char::is_whitespace)
    {
        after_tag
    } else {
        rest
    };
    match rest.find("```") {
        Some(end) => Some((&rest[..end], rest[end..].trim_start_matches('`'))),
        None => Some((rest, "")),
    }
}

/// Number of characters kept in a snippet.
const SNIPPET_CHARS: usize = 80;

/// Quotes `s` for a verdict reason, truncated to ~80 characters with "…".
/// Newlines become "⏎" and other control characters spaces so a reason
/// stays on one line; nothing else is escaped.
pub(crate) fn snippet(s: &str) -> String {
    format!("\"{}\"", clip(s))
}

/// [`snippet`] without the quotes, for text that is already JSON.
pub(crate) fn clip(s: &str) -> String {
    let mut out = String::with_capacity(SNIPPET_CHARS + 8);
    for (i, c) in s.chars().enumerate() {
        if i == SNIPPET_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push('⏎'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(list: &[Normalize]) -> NormalizeSet {
        NormalizeSet::from_config(Some(list), &[])
    }

    #[test]
    fn empty_set_is_identity() {
        assert_eq!(set(&[]).apply("  A\n"), "  A\n");
    }

    #[test]
    fn default_used_only_when_omitted() {
        let d = [Normalize::Trim];
        assert_eq!(NormalizeSet::from_config(None, &d).apply(" a "), "a");
        assert_eq!(NormalizeSet::from_config(Some(&[]), &d).apply(" a "), " a ");
    }

    #[test]
    fn steps_run_in_fixed_order() {
        // Listed order is irrelevant: trim still runs after fence stripping.
        let s = set(&[
            Normalize::Trim,
            Normalize::StripCodeFences,
            Normalize::Lowercase,
        ]);
        assert_eq!(s.apply("```text\n  Billing \n```\n"), "billing");
    }

    #[test]
    fn collapse_and_punctuation() {
        let s = set(&[Normalize::CollapseWhitespace, Normalize::StripPunctuation]);
        assert_eq!(s.apply("Hello,\n\n  “world”…!"), "Hello world");
    }

    #[test]
    fn one_line_fence_keeps_content() {
        assert_eq!(set(&[Normalize::StripCodeFences]).apply("```bug```"), "bug");
    }

    #[test]
    fn fenced_body_variants() {
        assert_eq!(fenced_body("```json\n{}\n```"), Some(("\n{}\n", "")));
        assert_eq!(fenced_body("```{\"a\":1}```"), Some(("{\"a\":1}", "")));
        assert_eq!(
            fenced_body("```\n[1]\n``` done"),
            Some(("\n[1]\n", " done"))
        );
        assert_eq!(fenced_body("```json\n{\"a\""), Some(("\n{\"a\"", "")));
        assert_eq!(fenced_body("{}"), None);
    }

    #[test]
    fn snippet_truncates_on_char_boundaries() {
        let long = "é".repeat(200);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), 80 + 3);
        assert!(s.ends_with("…\""));
        assert_eq!(snippet("a\nb\tc"), "\"a⏎b c\"");
    }

    proptest! {
        #[test]
        fn normalize_never_panics(s in any::<String>(), bits in 0u8..32) {
            let _ = NormalizeSet(bits).apply(&s);
            let _ = fenced_body(&s);
            let _ = snippet(&s);
        }

        #[test]
        fn normalize_is_idempotent(s in "[ a-zA-Z,.`\n]{0,40}", bits in 0u8..32) {
            let n = NormalizeSet(bits);
            let once = n.apply(&s).into_owned();
            prop_assert_eq!(n.apply(&once).into_owned(), once);
        }
    }
}
