//! The diff against the AI's original: a line diff, and a word diff marking what
//! changed inside a replaced line.

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Same(String),
    Added(String),
    Removed(String),
}

/// A line diff (LCS). Drafts are small; inputs above 2,000 lines fall back to
/// "all removed, all added" to bound the cost.
pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    if a.len() > 2000 || b.len() > 2000 {
        let mut out: Vec<DiffLine> = a.iter().map(|l| DiffLine::Removed(l.to_string())).collect();
        out.extend(b.iter().map(|l| DiffLine::Added(l.to_string())));
        return out;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            out.push(DiffLine::Same(a[i].to_string()));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(DiffLine::Removed(a[i].to_string()));
            i += 1;
        } else {
            out.push(DiffLine::Added(b[j].to_string()));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| DiffLine::Removed(l.to_string())));
    out.extend(b[j..].iter().map(|l| DiffLine::Added(l.to_string())));
    out
}

/// One piece of a line in a word diff: the text and whether it changed.
pub type WordSpan = (String, bool);

/// The words of `old` and `new` (a removed line and the added line that replaced it),
/// each marked changed or not by a word-level LCS; whitespace is kept with the word
/// before it, so the spans join back into the lines exactly.
pub fn word_diff(old: &str, new: &str) -> (Vec<WordSpan>, Vec<WordSpan>) {
    fn words(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut in_space = false;
        for (i, c) in s.char_indices() {
            if c.is_whitespace() {
                in_space = true;
            } else if in_space {
                out.push(&s[start..i]);
                start = i;
                in_space = false;
            }
        }
        if start < s.len() {
            out.push(&s[start..]);
        }
        out
    }
    let (a, b) = (words(old), words(new));
    // Long lines are marked whole: the table is quadratic.
    if a.len() * b.len() > 40_000 {
        return (vec![(old.to_string(), true)], vec![(new.to_string(), true)]);
    }
    let key = |w: &str| w.trim_end().to_string();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if key(a[i]) == key(b[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut ka, mut kb) = (vec![false; n], vec![false; m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if key(a[i]) == key(b[j]) {
            ka[i] = true;
            kb[j] = true;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let spans = |ws: &[&str], kept: &[bool]| -> Vec<WordSpan> {
        let mut out: Vec<WordSpan> = Vec::new();
        for (w, k) in ws.iter().zip(kept) {
            match out.last_mut() {
                Some((text, changed)) if *changed != *k => text.push_str(w),
                _ => out.push((w.to_string(), !k)),
            }
        }
        out
    };
    (spans(&a, &ka), spans(&b, &kb))
}
