//! The properties of an entity type in an OData `$metadata` document (EDMX, V2 or V4), as
//! field mappings describe a system's fields. Only `<EntityType>` and its `<Property>`
//! elements are read: both are flat, self-closing elements with quoted attributes in every
//! EDMX a service generates, so they are found by their tags without a general XML parser.

use ironbridge_core::connector::DescribedField;

/// The value of attribute `name` in a tag's text, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    loop {
        let at = rest.find(name)?;
        let before = rest[..at].chars().last();
        rest = &rest[at + name.len()..];
        // A whole attribute name: preceded by whitespace, followed by `="`.
        if before.is_some_and(char::is_whitespace)
            && let Some(value) = rest.strip_prefix("=\"")
        {
            let end = value.find('"')?;
            return Some(unescape(&value[..end]));
        }
    }
}

fn unescape(v: &str) -> String {
    v.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The type names remote fields use, from an EDM type (`sap:display-format="Date"` marks an
/// OData V2 `Edm.DateTime` that holds a date).
fn kind(edm: &str, tag: &str) -> &'static str {
    match edm {
        "Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Byte" | "Edm.SByte" => "integer",
        "Edm.Decimal" | "Edm.Double" | "Edm.Single" => "decimal",
        "Edm.Boolean" => "boolean",
        "Edm.Date" => "date",
        "Edm.DateTime" if attribute(tag, "sap:display-format").as_deref() == Some("Date") => "date",
        "Edm.DateTime" | "Edm.DateTimeOffset" => "date_time",
        _ => "text",
    }
}

/// The properties of entity type `type_name`, described under `scope`.
pub(crate) fn properties(xml: &str, type_name: &str, scope: &str) -> Vec<DescribedField> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<EntityType ") {
        rest = &rest[at..];
        let Some(end) = rest.find("</EntityType>") else {
            break;
        };
        let body = &rest[..end];
        rest = &rest[end..];
        let head = &body[..body.find('>').unwrap_or(body.len())];
        if attribute(head, "Name").as_deref() != Some(type_name) {
            continue;
        }
        for tag in body.split("<Property ").skip(1) {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            let tag = format!(" {tag}");
            let (Some(name), Some(edm)) = (attribute(&tag, "Name"), attribute(&tag, "Type")) else {
                continue;
            };
            out.push(DescribedField {
                scope: scope.to_string(),
                kind: kind(&edm, &tag).to_string(),
                label: attribute(&tag, "sap:label"),
                path: name,
            });
        }
        break;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_of_one_entity_type_are_read() {
        let xml = r#"<edmx:Edmx><Schema><EntityType Name="A_PurchaseOrderItemType"><Property Name="X" Type="Edm.String"/></EntityType>
            <EntityType Name="A_PurchaseOrderType" sap:content-version="1"><Key><PropertyRef Name="PurchaseOrder"/></Key>
            <Property Name="PurchaseOrder" Type="Edm.String" Nullable="false" MaxLength="10" sap:label="Purchasing Document"/>
            <Property Name="PurchaseOrderDate" Type="Edm.DateTime" Precision="0" sap:display-format="Date" sap:label="Doc. &amp; Date"/>
            <Property Name="LastChangeDateTime" Type="Edm.DateTimeOffset" Precision="7"/>
            <Property Name="NetAmount" Type="Edm.Decimal" Precision="16" Scale="3"/>
            <Property Name="YY1_Flag" Type="Edm.Boolean"/>
            <NavigationProperty Name="to_PurchaseOrderItem" Relationship="x"/></EntityType></Schema></edmx:Edmx>"#;
        let p = properties(xml, "A_PurchaseOrderType", "record");
        let got: Vec<(&str, &str, Option<&str>)> = p
            .iter()
            .map(|f| (f.path.as_str(), f.kind.as_str(), f.label.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("PurchaseOrder", "text", Some("Purchasing Document")),
                ("PurchaseOrderDate", "date", Some("Doc. & Date")),
                ("LastChangeDateTime", "date_time", None),
                ("NetAmount", "decimal", None),
                ("YY1_Flag", "boolean", None),
            ]
        );
        assert_eq!(
            properties(xml, "A_PurchaseOrderItemType", "line_items").len(),
            1
        );
        assert!(properties(xml, "Nope", "record").is_empty());
        assert!(properties("not xml", "A", "record").is_empty());
    }
}
