//! Feature expressions as SQL: parsing, canonical text, and the names they reference.
//!
//! Expressions are parsed here with the same SQL parser (and dialect) DataFusion uses, so a
//! syntax error is found without reading any data, and the canonical text (the parsed AST
//! printed back) makes version hashes blind to whitespace and keyword case. Type-checking
//! against source schemas needs DataFusion and lives in the `engine` crate.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// Parses one SQL scalar expression; the error text says what the parser expected.
pub fn parse(sql: &str) -> Result<Expr, String> {
    let dialect = GenericDialect {};
    let clean = |e: sqlparser::parser::ParserError| e.to_string().trim_start_matches("sql parser error: ").to_string();
    let mut parser = Parser::new(&dialect).try_with_sql(sql).map_err(clean)?;
    let expr = parser.parse_expr().map_err(clean)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("unexpected `{}` after the end of the expression", next.token));
    }
    Ok(expr)
}

/// The expression printed back from its syntax tree: the same for `a+b` and `a + b`.
pub fn canonical(sql: &str) -> String {
    parse(sql).map_or_else(|_| sql.trim().to_string(), |e| e.to_string())
}

/// Every column-like name the expression reads, as its dotted parts (`view.feature` → 2 parts).
pub fn references(expr: &Expr) -> Vec<Vec<String>> {
    struct Collect(Vec<Vec<String>>);
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(id) => self.0.push(vec![id.value.clone()]),
                Expr::CompoundIdentifier(parts) => self.0.push(parts.iter().map(|p| p.value.clone()).collect()),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = expr.visit(&mut collect);
    collect.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_ignores_spacing_and_keyword_case() {
        assert_eq!(canonical("a+b*2"), canonical("a  +  b * 2"));
        assert_eq!(
            canonical("case when x > 1 then 'a' else 'b' end"),
            canonical("CASE WHEN x>1 THEN 'a' ELSE 'b' END")
        );
        assert_ne!(canonical("a + b"), canonical("a - b"));
    }

    #[test]
    fn reports_syntax_errors_and_trailing_tokens() {
        assert!(parse("a +").is_err());
        let trailing = parse("a b").unwrap_err();
        assert!(trailing.contains("after the end"), "{trailing}");
    }

    #[test]
    fn collects_plain_and_dotted_references() {
        let expr = parse("driver_stats.conv_rate * 10 - distance_km + abs(x)").unwrap();
        assert_eq!(
            references(&expr),
            vec![
                vec!["driver_stats".to_string(), "conv_rate".to_string()],
                vec!["distance_km".to_string()],
                vec!["x".to_string()]
            ]
        );
    }
}
