//! The status model and its renderings: Weave's text layout for `/status` and the JSON of
//! `/report` (Weave's field names, so scripts written for `weave report` keep working).
//! Pure: built from router state, rendered without I/O.

use serde::Serialize;

/// What `/report` returns. Fields appear as the features that fill them land.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub ready: bool,
    pub version: String,
    pub router: RouterReport,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RouterReport {
    pub name: String,
    pub nick_name: String,
}

/// Weave right-aligns labels so that the colons line up in column 16.
fn line(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{label:>15}: {value}\n"));
}

impl Report {
    /// The body of `GET /status`, in Weave's layout. weft has no version checker, so the
    /// version line says so, as Weave's does when its check is disabled.
    pub fn status_text(&self) -> String {
        let mut out = String::new();
        line(
            &mut out,
            "Version",
            &format!("{} (version check update disabled)", self.version),
        );
        out.push('\n');
        line(&mut out, "Service", "router");
        line(
            &mut out,
            "Name",
            &format!("{}({})", self.router.name, self.router.nick_name),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            ready: true,
            version: "0.1.0".into(),
            router: RouterReport {
                name: "8a:3e:3e:3e:3e:3e".into(),
                nick_name: "nicknamington".into(),
            },
        }
    }

    #[test]
    fn status_text_matches_weave_layout() {
        assert_eq!(
            report().status_text(),
            "        Version: 0.1.0 (version check update disabled)\n\
             \n        Service: router\n           Name: 8a:3e:3e:3e:3e:3e(nicknamington)\n"
        );
    }

    #[test]
    fn report_json_uses_weave_field_names() {
        let v = serde_json::to_value(report()).unwrap();
        assert_eq!(v["Ready"], true);
        assert_eq!(v["Router"]["Name"], "8a:3e:3e:3e:3e:3e");
        assert_eq!(v["Router"]["NickName"], "nicknamington");
    }
}
