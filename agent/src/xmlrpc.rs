//! The XML-RPC codec of the supervisord client: a method call written out, a method response
//! read back into [`Value`]s. XML is read with quick-xml (entities, CDATA and character
//! references resolved there); this module only maps XML-RPC's few element names. Pure: no
//! I/O, unit-tested below.

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;

/// Deepest nesting of elements accepted: supervisord's replies are a few levels deep; a
/// bound keeps a hostile reply from recursing without end.
const MAX_DEPTH: usize = 32;

/// A parameter of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    /// `<string>`.
    Str(&'a str),
    /// `<int>` (XML-RPC integers are 32-bit).
    Int(i32),
    /// `<boolean>`.
    Bool(bool),
}

/// A value of a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>`, `<i4>` or `<i8>`.
    Int(i64),
    /// `<boolean>`.
    Bool(bool),
    /// `<string>`, or a value without a type element; also `<base64>` and
    /// `<dateTime.iso8601>`, kept as their text.
    Str(String),
    /// `<double>`.
    Double(f64),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<struct>`: its members in order.
    Struct(Vec<(String, Value)>),
    /// `<nil/>`.
    Nil,
}

impl Value {
    /// The member `name` of a struct.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(m) => m.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number of an int.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A boolean (or an int: 0 is false).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Why a response gave no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The server answered with a fault.
    #[error("{text} (fault {code})")]
    Fault {
        /// `faultCode`.
        code: i64,
        /// `faultString`.
        text: String,
    },
    /// Not an XML-RPC response.
    #[error("{0}")]
    Malformed(String),
}

/// The body of a call of `method` with `params`.
pub fn encode_call(method: &str, params: &[Param<'_>]) -> String {
    let mut out = String::with_capacity(128 + 64 * params.len());
    out.push_str("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    out.push_str(&escape(method));
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param><value>");
        match p {
            Param::Str(s) => {
                out.push_str("<string>");
                out.push_str(&escape(*s));
                out.push_str("</string>");
            }
            Param::Int(i) => out.push_str(&format!("<int>{i}</int>")),
            Param::Bool(b) => out.push_str(&format!("<boolean>{}</boolean>", u8::from(*b))),
        }
        out.push_str("</value></param>");
    }
    out.push_str("</params></methodCall>\n");
    out
}

/// An element of the document: its name, its text (all text directly inside it) and its
/// child elements.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(what.into())
}

/// The document's root element, as a tree.
fn tree(xml: &str) -> Result<Node, DecodeError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    let name_of = |raw: &str| raw.to_owned();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(format!("bad XML: {e}")))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("elements nested too deep"));
                }
                stack.push(Node {
                    name: name_of(e.local_name().as_ref()),
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: name_of(e.local_name().as_ref()),
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.xml10_content();
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("unknown entity &{name};")))?
                            .to_owned()
                    }
                    Err(e) => return Err(malformed(format!("bad character reference: {e}"))),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or_else(|| malformed("empty document"))
}

/// One `<value>` element.
fn value(node: &Node) -> Result<Value, DecodeError> {
    let Some(typed) = node.children.first() else {
        // No type element: a string.
        return Ok(Value::Str(node.text.clone()));
    };
    let text = typed.text.as_str();
    let number = |t: &str| {
        t.trim()
            .parse::<i64>()
            .map_err(|_| malformed(format!("'{t}' is not an integer")))
    };
    Ok(match typed.name.as_str() {
        "int" | "i4" | "i8" => Value::Int(number(text)?),
        "boolean" => match text.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            t => return Err(malformed(format!("'{t}' is not a boolean"))),
        },
        "string" | "base64" | "dateTime.iso8601" => Value::Str(text.to_owned()),
        "double" => Value::Double(
            text.trim()
                .parse()
                .map_err(|_| malformed(format!("'{text}' is not a double")))?,
        ),
        "nil" => Value::Nil,
        "array" => {
            let data = typed
                .child("data")
                .ok_or_else(|| malformed("an array without <data>"))?;
            Value::Array(
                data.children
                    .iter()
                    .filter(|c| c.name == "value")
                    .map(value)
                    .collect::<Result<_, _>>()?,
            )
        }
        "struct" => Value::Struct(
            typed
                .children
                .iter()
                .filter(|c| c.name == "member")
                .map(|m| {
                    let name = m
                        .child("name")
                        .ok_or_else(|| malformed("a struct member without <name>"))?;
                    let v = m
                        .child("value")
                        .ok_or_else(|| malformed("a struct member without <value>"))?;
                    Ok((name.text.clone(), value(v)?))
                })
                .collect::<Result<_, DecodeError>>()?,
        ),
        other => return Err(malformed(format!("unknown value type <{other}>"))),
    })
}

/// The value of a `<methodResponse>`, or its fault.
pub fn decode_response(xml: &str) -> Result<Value, DecodeError> {
    let root = tree(xml)?;
    if root.name != "methodResponse" {
        return Err(malformed(format!(
            "<{}> where <methodResponse> was expected",
            root.name
        )));
    }
    if let Some(fault) = root.child("fault") {
        let v = fault
            .child("value")
            .ok_or_else(|| malformed("a fault without <value>"))
            .and_then(value)?;
        return Err(DecodeError::Fault {
            code: v.get("faultCode").and_then(Value::as_int).unwrap_or(0),
            text: v
                .get("faultString")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    root.child("params")
        .and_then(|p| p.child("param"))
        .and_then(|p| p.child("value"))
        .ok_or_else(|| malformed("a response without <params><param><value>"))
        .and_then(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_escaped() {
        let body = encode_call(
            "supervisor.startProcess",
            &[Param::Str("a<b>&\"c"), Param::Bool(true), Param::Int(-3)],
        );
        assert!(body.contains("<methodName>supervisor.startProcess</methodName>"));
        assert!(
            body.contains("<string>a&lt;b&gt;&amp;&quot;c</string>"),
            "{body}"
        );
        assert!(body.contains("<boolean>1</boolean>") && body.contains("<int>-3</int>"));
        // What we write, we read back.
        let reply = format!(
            "<methodResponse><params><param>{}</param></params></methodResponse>",
            &body[body.find("<value>").expect("value")..body.find("</param>").expect("end")]
        );
        assert_eq!(decode_response(&reply), Ok(Value::Str("a<b>&\"c".into())));
    }

    /// A reply of supervisord 4.2 to `getAllProcessInfo`, trimmed to one process.
    const ALL_INFO: &str = r#"<?xml version='1.0'?>
<methodResponse>
<params>
<param>
<value><array><data>
<value><struct>
<member>
<name>description</name>
<value><string>pid 4242, uptime 0:00:05</string></value>
</member>
<member>
<name>pid</name>
<value><int>4242</int></value>
</member>
<member>
<name>name</name>
<value><string>web &amp; api</string></value>
</member>
<member>
<name>group</name>
<value>plain&#x21;</value>
</member>
<member>
<name>spawnerr</name>
<value><string></string></value>
</member>
<member><name>ok</name><value><boolean>1</boolean></value></member>
<member><name>load</name><value><double>0.5</double></value></member>
<member><name>none</name><value><nil/></value></member>
<member><name>raw</name><value><string><![CDATA[<x>]]></string></value></member>
</struct></value>
</data></array></value>
</param>
</params>
</methodResponse>
"#;

    #[test]
    fn a_reply_is_read_with_its_types_and_entities() {
        let v = decode_response(ALL_INFO).expect("valid");
        let list = v.as_array().expect("array");
        assert_eq!(list.len(), 1);
        let p = &list[0];
        assert_eq!(p.get("pid").and_then(Value::as_int), Some(4242));
        assert_eq!(p.get("name").and_then(Value::as_str), Some("web & api"));
        assert_eq!(p.get("group").and_then(Value::as_str), Some("plain!"));
        assert_eq!(p.get("spawnerr").and_then(Value::as_str), Some(""));
        assert_eq!(p.get("ok").and_then(Value::as_bool), Some(true));
        assert_eq!(p.get("load"), Some(&Value::Double(0.5)));
        assert_eq!(p.get("none"), Some(&Value::Nil));
        assert_eq!(p.get("raw").and_then(Value::as_str), Some("<x>"));
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn a_fault_is_its_code_and_text() {
        let xml = "<?xml version='1.0'?><methodResponse><fault><value><struct>\
            <member><name>faultCode</name><value><int>10</int></value></member>\
            <member><name>faultString</name><value><string>BAD_NAME: nope</string></value></member>\
            </struct></value></fault></methodResponse>";
        assert_eq!(
            decode_response(xml),
            Err(DecodeError::Fault {
                code: 10,
                text: "BAD_NAME: nope".into()
            })
        );
    }

    #[test]
    fn anything_else_is_malformed_not_a_panic() {
        for bad in [
            "",
            "not xml",
            "<html><body>401 Unauthorized</body></html>",
            "<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>",
            "<methodResponse><params><param><value><blob>1</blob></value></param></params></methodResponse>",
            "<methodResponse><params><param><value><string>a",
            "<methodResponse><params></params></methodResponse>",
            "<methodResponse><params><param><value><string>&bogus;</string></value></param></params></methodResponse>",
        ] {
            assert!(
                matches!(decode_response(bad), Err(DecodeError::Malformed(_))),
                "{bad}"
            );
        }
        let deep = format!(
            "<methodResponse>{}{}</methodResponse>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(matches!(
            decode_response(&deep),
            Err(DecodeError::Malformed(m)) if m.contains("deep")
        ));
    }
}
