//! `label_replace` and `label_join`
//! (<https://prometheus.io/docs/prometheus/latest/querying/functions/#label_replace>).

use crate::model::{Labels, METRIC_NAME};
use crate::promql::value::{exec, Error};

/// A compiled `label_replace` call.
pub(crate) struct Replace {
    re: regex::Regex,
    dst: String,
    repl: String,
    src: String,
}

impl Replace {
    pub(crate) fn new(dst: &str, repl: &str, src: &str, re: &str) -> Result<Replace, Error> {
        let re = regex::Regex::new(&format!("^(?s:{re})$")).map_err(|_| {
            exec(format!(
                "invalid regular expression in label_replace(): {re}"
            ))
        })?;
        if dst.is_empty() {
            return Err(exec(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        Ok(Replace {
            re,
            dst: dst.into(),
            repl: repl.into(),
            src: src.into(),
        })
    }

    /// The new labels, or `None` when unchanged; the bool says whether `__name__` was set.
    pub(crate) fn apply(&self, l: &Labels) -> Option<Labels> {
        let v = l.get(&self.src).unwrap_or("");
        let caps = self.re.captures(v)?;
        let mut res = String::new();
        caps.expand(&self.repl, &mut res);
        let mut b = l.builder();
        b.set(self.dst.clone(), res);
        Some(b.into_labels())
    }

    pub(crate) fn sets_name(&self) -> bool {
        self.dst == METRIC_NAME
    }
}

/// `label_join`: the new label set.
pub(crate) fn join(l: &Labels, dst: &str, sep: &str, srcs: &[String]) -> Labels {
    let vals: Vec<&str> = srcs.iter().map(|s| l.get(s).unwrap_or("")).collect();
    let mut b = l.builder();
    b.set(dst.to_string(), vals.join(sep));
    b.into_labels()
}
