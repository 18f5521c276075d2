//! Printing on stdout that ends quietly when the reader goes away (`paddock audit review |
//! head -1`): a closed pipe is not paddock's failure, and never a panic.

use std::fmt::Display;
use std::io::{ErrorKind, Write};

use crate::exit::{self, fail};

/// Writes `text` on stdout. A closed pipe is ignored (the command ends with the code it
/// would have had); any other write error is paddock's failure (125).
pub fn print(text: impl Display) -> Result<(), i32> {
    let mut out = std::io::stdout().lock();
    match write!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(fail(exit::INTERNAL, format_args!("cannot write to stdout: {e}"))),
    }
}

/// [`print`] with a newline.
pub fn println(text: impl Display) -> Result<(), i32> {
    print(format_args!("{text}\n"))
}
