//! Defence in depth: a translated pattern may only use the constructs the translator is allowed to
//! emit, whose semantics are the same in Rust as in the Python construct they stand for.
//!
//! The translator (`_translate.py`) never emits Rust's `(?i)`, `.`, `\d \w \s`, Unicode classes or
//! capture groups; characters are literals or bracketed classes of explicit ranges. A pattern
//! outside this allowlist means a translator bug, and is refused instead of silently matching
//! differently.

use regex_syntax::ast::{
    AssertionKind, Ast, ClassSet, ClassSetItem, Flag, FlagsItemKind, GroupKind,
    parse::ParserBuilder,
};

#[derive(Clone, Copy, Default)]
struct Scope {
    multi_line: bool,
    ascii: bool,
}

/// Ok when `pattern` stays inside the allowlist, else the reason.
///
/// # Errors
///
/// The reason the pattern is refused: it does not parse, or it uses a construct outside the
/// allowlist.
pub fn check_translated(pattern: &str) -> Result<(), String> {
    let ast = ParserBuilder::new()
        .nest_limit(500)
        .build()
        .parse(pattern)
        .map_err(|error| format!("translated pattern does not parse: {error}"))?;
    if !pattern.starts_with("\\A") {
        return Err("translated pattern is not anchored with \\A".to_owned());
    }
    walk(&ast, Scope::default())
}

fn walk(ast: &Ast, scope: Scope) -> Result<(), String> {
    match ast {
        Ast::Empty(_) | Ast::Literal(_) => Ok(()),
        Ast::Repetition(repetition) => walk(&repetition.ast, scope),
        Ast::Assertion(assertion) => match assertion.kind {
            AssertionKind::StartText | AssertionKind::EndText => Ok(()),
            AssertionKind::StartLine | AssertionKind::EndLine if scope.multi_line => Ok(()),
            AssertionKind::WordBoundary if scope.ascii => Ok(()),
            ref other => Err(format!("assertion {other:?} outside the allowlist")),
        },
        Ast::ClassBracketed(class) => class_set(&class.kind),
        Ast::Group(group) => match &group.kind {
            GroupKind::NonCapturing(flags) => {
                let mut inner = scope;
                let mut negated = false;
                for item in &flags.items {
                    match (&item.kind, negated) {
                        (FlagsItemKind::Negation, false) => negated = true,
                        (FlagsItemKind::Flag(Flag::MultiLine), false) => inner.multi_line = true,
                        (FlagsItemKind::Flag(Flag::Unicode), true) => inner.ascii = true,
                        (other, _) => {
                            return Err(format!("group flag {other:?} outside the allowlist"));
                        }
                    }
                }
                walk(&group.ast, inner)
            }
            _ => Err("capture group outside the allowlist".to_owned()),
        },
        Ast::Alternation(alternation) => {
            alternation.asts.iter().try_for_each(|ast| walk(ast, scope))
        }
        Ast::Concat(concat) => concat.asts.iter().try_for_each(|ast| walk(ast, scope)),
        Ast::Flags(_) => Err("flag setting outside the allowlist".to_owned()),
        Ast::Dot(_) => Err("'.' outside the allowlist".to_owned()),
        Ast::ClassUnicode(_) | Ast::ClassPerl(_) => {
            Err("Unicode or Perl class outside the allowlist".to_owned())
        }
    }
}

fn class_set(set: &ClassSet) -> Result<(), String> {
    match set {
        ClassSet::Item(item) => class_item(item),
        ClassSet::BinaryOp(_) => Err("class set operation outside the allowlist".to_owned()),
    }
}

fn class_item(item: &ClassSetItem) -> Result<(), String> {
    match item {
        ClassSetItem::Literal(_) | ClassSetItem::Range(_) => Ok(()),
        ClassSetItem::Union(union) => union.items.iter().try_for_each(class_item),
        _ => Err("class item outside the allowlist".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_translated;

    #[test]
    fn accepts_what_the_translator_emits() {
        for pattern in [
            r"\A(?:)",
            r"\A(?:ab\x{2F})",
            r"\A(?:[a-z\x{212A}](?:x|(?:y))+?\z)",
            r"\A(?:(?m:^)a(?m:$))",
            r"\A(?:a(?-u:\b))",
            r"\A(?:a(?:\n?\z))",
            r"\A(?:[^\x{0}-\x{10FFFF}])",
            r"\A(?:a{2,5}b{3,})",
        ] {
            assert_eq!(check_translated(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for pattern in [
            r"\A(?i:a)",
            r"\A(?i)a",
            r"\A.",
            r"\A\w",
            r"\A[\d]",
            r"\A\p{L}",
            r"\A(a)",
            r"\A(?P<n>a)",
            r"\A^",
            r"\A$",
            r"\A\b",
            r"\A(?-u:\B)",
            r"\A(?s:a)",
            r"\A[a&&b]",
            r"\A[[:alpha:]]",
            r"a",
        ] {
            assert!(check_translated(pattern).is_err(), "{pattern}");
        }
    }
}
