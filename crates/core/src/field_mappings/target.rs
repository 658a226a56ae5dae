//! What an override may name (a unified field, a member of an object field, a line field, a
//! custom field of the record or of its lines) and how its conversion becomes a rule of the
//! mapping engine.

use ironbridge_model::Entity;
use ironbridge_model::field_mappings::{Conversion, ConversionType};
use serde_json::Value;

use crate::mapping::{FieldRule, Kind, MappingDef};
use crate::system::{SystemDescriptor, WriteType};

/// The field an override changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unified field of the record (`memo`).
    Field(String),
    /// A member of an object field (`address.city`).
    Member(String, String),
    /// A custom field of the record (`custom_fields.cost_center`).
    Custom(String),
    /// A field of each element of a list (`line_items.description`).
    LineField(String, String),
    /// A custom field of each element of a list (`line_items.custom_fields.project`).
    LineCustom(String, String),
}

/// Fields no override may change: the envelope, and ids Ironbridge derives.
const FIXED: &[&str] = &[
    "id",
    "remote_id",
    "created_at",
    "modified_at",
    "remote_created_at",
    "remote_updated_at",
    "remote_was_deleted",
    "remote_data",
];

fn custom_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Why a target cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// No such field of the entity (or of its lists or object fields).
    Unknown(String),
    /// A field that exists but no override may change, or a malformed custom field name.
    Refused(String),
}

impl TargetError {
    /// The reason, for people.
    pub fn message(&self) -> &str {
        match self {
            TargetError::Unknown(m) | TargetError::Refused(m) => m,
        }
    }
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl Target {
    /// Reads `target` for `entity` under its default mapping `def`; the error says why it
    /// cannot be mapped, for people.
    pub fn parse(entity: Entity, def: &MappingDef, target: &str) -> Result<Target, TargetError> {
        let spec = entity.spec();
        let label = spec.label;
        let parts: Vec<&str> = target.split('.').collect();
        let bad_custom = |name: &str| {
            format!(
                "`{name}` is not a usable custom field name (1 to 100 letters, digits, `_` or `-`)."
            )
        };
        match parts.as_slice() {
            ["custom_fields", name] => {
                if custom_name_ok(name) {
                    Ok(Target::Custom((*name).to_string()))
                } else {
                    Err(TargetError::Refused(bad_custom(name)))
                }
            }
            [list, "custom_fields", name] if entity.list(list).is_some() => {
                if custom_name_ok(name) {
                    Ok(Target::LineCustom((*list).to_string(), (*name).to_string()))
                } else {
                    Err(TargetError::Refused(bad_custom(name)))
                }
            }
            [list, name] if entity.list(list).is_some() => {
                let l = entity.list(list).expect("checked above");
                if ["id", "remote_id", "custom_fields"].contains(name) {
                    Err(TargetError::Refused(format!(
                        "`{target}` is derived by Ironbridge and cannot be remapped."
                    )))
                } else if l.fields.contains(name) {
                    Ok(Target::LineField((*list).to_string(), (*name).to_string()))
                } else {
                    Err(TargetError::Unknown(format!(
                        "`{name}` is not a field of a {label}'s `{list}`."
                    )))
                }
            }
            [field] if FIXED.contains(field) => Err(TargetError::Refused(format!(
                "`{field}` is part of every record's envelope and cannot be remapped."
            ))),
            [field] if *field == "custom_fields" || entity.list(field).is_some() => {
                Err(TargetError::Refused(format!(
                    "`{field}` is a collection; map one of its fields (`{field}.<name>`)."
                )))
            }
            [field] if spec.fields.contains(field) => {
                let object = def
                    .fields
                    .iter()
                    .any(|(n, r)| n == field && r.kind == Kind::Object);
                if object {
                    Err(TargetError::Refused(format!(
                        "`{field}` is an object; map one of its members (`{field}.<member>`)."
                    )))
                } else {
                    Ok(Target::Field((*field).to_string()))
                }
            }
            [field, member] if spec.fields.contains(field) => {
                let known = def.fields.iter().any(|(n, r)| {
                    n == field
                        && r.kind == Kind::Object
                        && r.fields.iter().flatten().any(|(m, _)| m == member)
                });
                if known {
                    Ok(Target::Member((*field).to_string(), (*member).to_string()))
                } else {
                    Err(TargetError::Unknown(format!(
                        "`{target}` is not a member of a {label}'s `{field}`."
                    )))
                }
            }
            _ => Err(TargetError::Unknown(format!(
                "`{target}` is not a field of a {label}."
            ))),
        }
    }

    /// The list whose source lines the source path is relative to (`None`: the record).
    pub fn list(&self) -> Option<&str> {
        match self {
            Target::LineField(l, _) | Target::LineCustom(l, _) => Some(l),
            _ => None,
        }
    }

    /// Whether it is a custom field (which may be added or removed, and takes any type).
    pub fn is_custom(&self) -> bool {
        matches!(self, Target::Custom(_) | Target::LineCustom(..))
    }

    /// The default mapping's rule for it, if the system maps it.
    pub fn default_rule<'d>(&self, def: &'d MappingDef) -> Option<&'d FieldRule> {
        let find = |rules: &'d [(String, FieldRule)], name: &str| {
            rules.iter().find(|(n, _)| n == name).map(|(_, r)| r)
        };
        match self {
            Target::Field(name) => find(&def.fields, name),
            Target::Member(field, member) => find(&def.fields, field)
                .and_then(|r| r.fields.as_deref())
                .and_then(|fields| find(fields, member)),
            Target::LineField(list, name) => def
                .lists
                .iter()
                .find(|l| &l.target == list)
                .and_then(|l| find(&l.fields, name)),
            Target::Custom(_) | Target::LineCustom(..) => None,
        }
    }

    /// The unified values an enum field takes, from the write descriptions of the system or
    /// of the sandbox (which describes every entity it reads).
    pub fn enum_values(
        &self,
        system: &SystemDescriptor,
        entity: Entity,
    ) -> Option<&'static [&'static str]> {
        let Target::Field(name) = self else {
            return None;
        };
        [system, &crate::sandbox::DESCRIPTOR]
            .iter()
            .filter_map(|s| s.write(entity))
            .flat_map(|w| w.fields.iter())
            .find(|f| f.name == name)
            .and_then(|f| match f.ty {
                WriteType::Enum(values) => Some(values),
                _ => None,
            })
    }
}

/// The engine's kind of a conversion type.
pub fn kind_of(t: ConversionType) -> Kind {
    match t {
        ConversionType::Text => Kind::String,
        ConversionType::Integer => Kind::Integer,
        ConversionType::Decimal => Kind::Decimal,
        ConversionType::Number => Kind::Number,
        ConversionType::Boolean => Kind::Bool,
        ConversionType::Date => Kind::Date,
        ConversionType::DateTime => Kind::Datetime,
        ConversionType::Enum => Kind::Enum,
        ConversionType::Reference => Kind::Ref,
    }
}

/// The conversion type of an engine kind (`None` for an object).
pub fn type_of(k: Kind) -> Option<ConversionType> {
    Some(match k {
        Kind::String => ConversionType::Text,
        Kind::Integer => ConversionType::Integer,
        Kind::Decimal => ConversionType::Decimal,
        Kind::Number => ConversionType::Number,
        Kind::Bool => ConversionType::Boolean,
        Kind::Date => ConversionType::Date,
        Kind::Datetime => ConversionType::DateTime,
        Kind::Enum => ConversionType::Enum,
        Kind::Ref => ConversionType::Reference,
        Kind::Object => return None,
    })
}

/// A rule's conversion, as the API shows it.
pub fn conversion_of(rule: &FieldRule) -> Option<Conversion> {
    Some(Conversion {
        kind: type_of(rule.kind)?,
        values: rule.values.clone(),
        default: rule.default.clone(),
        entity: rule.entity,
    })
}

/// The rule reading `path` with `conversion`.
pub fn rule_of(path: &str, conversion: &Conversion) -> FieldRule {
    FieldRule {
        path: Some(path.to_string()),
        kind: kind_of(conversion.kind),
        values: conversion.values.clone(),
        default: conversion.default.clone(),
        entity: conversion.entity,
        fields: None,
        scale: None,
    }
}

/// Checks a source path's form: dotted names (or list indexes), none empty.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 200 {
        return Err("`source_path` must be 1 to 200 characters.".into());
    }
    if path.split('.').count() > 8 || path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{path}` is not a source path: dotted names such as `entity.id`, at most 8."
        ));
    }
    Ok(())
}

/// Checks a conversion's parameters, and, for a unified field, that it produces the field's
/// type (`reference` the same entity, `enum` only the field's values).
pub fn check_conversion(
    conversion: &Conversion,
    default_rule: Option<&FieldRule>,
    unified_values: Option<&[&str]>,
) -> Result<(), (String, String)> {
    let err = |param: &str, message: String| Err((param.to_string(), message));
    match conversion.kind {
        ConversionType::Enum => {
            let Some(values) = conversion.values.as_ref().filter(|v| !v.is_empty()) else {
                return err(
                    "conversion.values",
                    "An `enum` conversion needs `values`: source value → unified value.".into(),
                );
            };
            if let Some(allowed) = unified_values {
                let outside = values
                    .values()
                    .chain(conversion.default.iter())
                    .find(|v| !v.as_str().is_some_and(|s| allowed.contains(&s)));
                if let Some(v) = outside {
                    return err(
                        "conversion.values",
                        format!(
                            "{v} is not a value of this field (one of: {}).",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        ConversionType::Reference if conversion.entity.is_none() => {
            return err(
                "conversion.entity",
                "A `reference` conversion names the `entity` it refers to.".into(),
            );
        }
        _ if conversion.values.is_some() => {
            return err(
                "conversion.values",
                "Only an `enum` conversion takes `values`.".into(),
            );
        }
        _ => {}
    }
    if conversion.kind != ConversionType::Reference && conversion.entity.is_some() {
        return err(
            "conversion.entity",
            "Only a `reference` conversion names an `entity`.".into(),
        );
    }
    if let Some(rule) = default_rule {
        let wanted = type_of(rule.kind);
        if wanted.is_some_and(|w| w != conversion.kind) {
            let w = wanted.map(|w| serde_json::to_value(w).unwrap_or(Value::Null));
            return err(
                "conversion.type",
                format!(
                    "This field holds `{}` values; its conversion must be that type.",
                    w.as_ref().and_then(Value::as_str).unwrap_or("other")
                ),
            );
        }
        if rule.kind == Kind::Ref && rule.entity != conversion.entity {
            return err(
                "conversion.entity",
                format!(
                    "This field refers to {}s.",
                    rule.entity.map_or("other record", |e| e.spec().label)
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def() -> MappingDef {
        serde_json::from_value(json!({
            "system": "sandbox", "entity": "vendor", "remote_id": "id",
            "fields": [["name", {"path": "n"}],
                       ["address", {"kind": "object", "fields": [["city", {"path": "a.c"}]]}]]
        }))
        .unwrap()
    }

    #[test]
    fn targets_are_read_and_refused_with_reasons() {
        let po: MappingDef = serde_json::from_value(json!({
            "system": "sandbox", "entity": "purchase_order", "remote_id": "id", "fields": []
        }))
        .unwrap();
        let e = Entity::PURCHASE_ORDER;
        assert_eq!(
            Target::parse(e, &po, "memo").unwrap(),
            Target::Field("memo".into())
        );
        assert_eq!(
            Target::parse(e, &po, "custom_fields.cost_center").unwrap(),
            Target::Custom("cost_center".into())
        );
        assert_eq!(
            Target::parse(e, &po, "line_items.description").unwrap(),
            Target::LineField("line_items".into(), "description".into())
        );
        assert_eq!(
            Target::parse(e, &po, "line_items.custom_fields.p").unwrap(),
            Target::LineCustom("line_items".into(), "p".into())
        );
        for bad in [
            "id",
            "remote_updated_at",
            "line_items",
            "line_items.id",
            "custom_fields",
            "colour",
            "custom_fields.a b",
            "line_items.colour",
            "memo.x",
        ] {
            assert!(Target::parse(e, &po, bad).is_err(), "{bad}");
        }
        let v = Entity::VENDOR;
        assert!(Target::parse(v, &def(), "address").is_err());
        assert_eq!(
            Target::parse(v, &def(), "address.city").unwrap(),
            Target::Member("address".into(), "city".into())
        );
        assert!(Target::parse(v, &def(), "address.planet").is_err());
    }

    #[test]
    fn conversions_must_fit_the_field() {
        let c = |v: Value| serde_json::from_value::<Conversion>(v).unwrap();
        let decimal = FieldRule {
            path: Some("t".into()),
            kind: Kind::Decimal,
            ..FieldRule::default()
        };
        assert!(check_conversion(&c(json!({"type": "decimal"})), Some(&decimal), None).is_ok());
        assert_eq!(
            check_conversion(&c(json!({"type": "text"})), Some(&decimal), None)
                .unwrap_err()
                .0,
            "conversion.type"
        );
        assert_eq!(
            check_conversion(&c(json!({"type": "enum"})), None, None)
                .unwrap_err()
                .0,
            "conversion.values"
        );
        assert_eq!(
            check_conversion(
                &c(json!({"type": "enum", "values": {"X": "shipped"}})),
                None,
                Some(&["draft", "approved"])
            )
            .unwrap_err()
            .0,
            "conversion.values"
        );
        assert_eq!(
            check_conversion(&c(json!({"type": "reference"})), None, None)
                .unwrap_err()
                .0,
            "conversion.entity"
        );
        assert!(check_path("a..b").is_err());
        assert!(check_path("entity.id").is_ok());
    }
}
