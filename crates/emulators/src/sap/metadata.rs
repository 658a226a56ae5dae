//! Service documents and `$metadata` (EDMX 1.0 / OData V2 with SAP annotations) generated from the
//! property tables, so what clients load always matches what the emulator serves.

use super::model::{
    ACCOUNT_ASSIGNMENT_PROPS, BP_PROPS, DESC_PROPS, Edm, ITEM_PROPS, Measure, NOTE_PROPS, PO_PROPS,
    PRODUCT_PROPS, Prop, ROLE_PROPS, SCHEDULE_LINE_PROPS, SUPPLIER_PROPS,
};

/// An entity set of a service.
pub struct EntityDef {
    pub set: &'static str,
    pub type_name: &'static str,
    pub props: &'static [Prop],
    pub keys: &'static [&'static str],
    /// (navigation property, target set, to-many)
    pub navs: &'static [(&'static str, &'static str, bool)],
}

pub struct Service {
    pub name: &'static str,
    pub entities: &'static [EntityDef],
}

pub const PURCHASE_ORDER: Service = Service {
    name: "API_PURCHASEORDER_PROCESS_SRV",
    entities: &[
        EntityDef {
            set: "A_PurchaseOrder",
            type_name: "A_PurchaseOrderType",
            props: PO_PROPS,
            keys: &["PurchaseOrder"],
            navs: &[
                ("to_PurchaseOrderItem", "A_PurchaseOrderItem", true),
                ("to_PurchaseOrderNote", "A_PurchaseOrderNote", true),
            ],
        },
        EntityDef {
            set: "A_PurchaseOrderItem",
            type_name: "A_PurchaseOrderItemType",
            props: ITEM_PROPS,
            keys: &["PurchaseOrder", "PurchaseOrderItem"],
            // SAP's item also has `to_PurchaseOrderItemNote` and
            // `to_PurchaseOrderPricingElement`, whose sets are not emulated.
            navs: &[
                ("to_PurchaseOrder", "A_PurchaseOrder", false),
                ("to_AccountAssignment", "A_PurOrdAccountAssignment", true),
                ("to_ScheduleLine", "A_PurchaseOrderScheduleLine", true),
            ],
        },
        EntityDef {
            set: "A_PurchaseOrderNote",
            type_name: "A_PurchaseOrderNoteType",
            props: NOTE_PROPS,
            keys: &["PurchaseOrder", "TextObjectType", "Language"],
            navs: &[],
        },
        EntityDef {
            set: "A_PurchaseOrderScheduleLine",
            type_name: "A_PurchaseOrderScheduleLineType",
            props: SCHEDULE_LINE_PROPS,
            keys: &[
                "PurchasingDocument",
                "PurchasingDocumentItem",
                "ScheduleLine",
            ],
            // SAP's `to_SubcontractingComponent` (A_POSubcontractingComponent) is not emulated.
            navs: &[],
        },
        EntityDef {
            set: "A_PurOrdAccountAssignment",
            type_name: "A_PurOrdAccountAssignmentType",
            props: ACCOUNT_ASSIGNMENT_PROPS,
            keys: &[
                "PurchaseOrder",
                "PurchaseOrderItem",
                "AccountAssignmentNumber",
            ],
            navs: &[],
        },
    ],
};

pub const BUSINESS_PARTNER: Service = Service {
    name: "API_BUSINESS_PARTNER",
    entities: &[
        EntityDef {
            set: "A_Supplier",
            type_name: "A_SupplierType",
            props: SUPPLIER_PROPS,
            keys: &["Supplier"],
            navs: &[],
        },
        EntityDef {
            set: "A_BusinessPartner",
            type_name: "A_BusinessPartnerType",
            props: BP_PROPS,
            keys: &["BusinessPartner"],
            navs: &[
                ("to_BusinessPartnerRole", "A_BusinessPartnerRole", true),
                ("to_Supplier", "A_Supplier", false),
            ],
        },
        EntityDef {
            set: "A_BusinessPartnerRole",
            type_name: "A_BusinessPartnerRoleType",
            props: ROLE_PROPS,
            keys: &["BusinessPartner", "BusinessPartnerRole"],
            navs: &[],
        },
    ],
};

pub const PRODUCT: Service = Service {
    name: "API_PRODUCT_SRV",
    entities: &[
        EntityDef {
            set: "A_Product",
            type_name: "A_ProductType",
            props: PRODUCT_PROPS,
            keys: &["Product"],
            navs: &[("to_Description", "A_ProductDescription", true)],
        },
        EntityDef {
            set: "A_ProductDescription",
            type_name: "A_ProductDescriptionType",
            props: DESC_PROPS,
            keys: &["Product", "Language"],
            navs: &[],
        },
    ],
};

pub const SERVICES: [&Service; 3] = [&PURCHASE_ORDER, &BUSINESS_PARTNER, &PRODUCT];

pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
}

impl Service {
    pub fn entity(&self, set: &str) -> Option<&'static EntityDef> {
        self.entities.iter().find(|e| e.set == set)
    }
}

impl EntityDef {
    pub fn prop(&self, name: &str) -> Option<&'static Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

fn assoc_name(from: &EntityDef, nav: &str) -> String {
    format!("assoc_{}_{}", from.set, nav)
}

/// One `<Property>` with the facets and SAP annotations SAP's EDMX gives it: `Nullable="false"`
/// only where declared (keys), `sap:creatable`/`sap:updatable="false"` on read-only
/// properties, `sap:unit` on quantities and amounts.
fn prop_xml(p: &Prop) -> String {
    let (ty, extra) = match p.ty {
        Edm::Str(len) => ("Edm.String", format!(" MaxLength=\"{len}\"")),
        Edm::Text => ("Edm.String", String::new()),
        Edm::Dec(pr, sc) => ("Edm.Decimal", format!(" Precision=\"{pr}\" Scale=\"{sc}\"")),
        Edm::Bool => ("Edm.Boolean", String::new()),
        Edm::DateTime => (
            "Edm.DateTime",
            " Precision=\"0\" sap:display-format=\"Date\"".to_string(),
        ),
        Edm::DateTimeOffset => ("Edm.DateTimeOffset", " Precision=\"7\"".to_string()),
        Edm::Time => ("Edm.Time", " Precision=\"0\"".to_string()),
    };
    let nullable = if p.nullable {
        ""
    } else {
        " Nullable=\"false\""
    };
    let mut sap = String::new();
    if p.numc {
        sap.push_str(" sap:display-format=\"NonNegative\"");
    }
    if let Some(Measure::Unit(u) | Measure::Currency(u)) = p.measure {
        sap.push_str(&format!(" sap:unit=\"{u}\""));
    }
    sap.push_str(&format!(" sap:label=\"{}\"", p.name));
    if !p.creatable {
        sap.push_str(" sap:creatable=\"false\"");
    }
    if !p.updatable {
        sap.push_str(" sap:updatable=\"false\"");
    }
    if !p.filterable {
        sap.push_str(" sap:filterable=\"false\"");
    }
    format!(
        "<Property Name=\"{}\" Type=\"{ty}\"{nullable}{extra}{sap}/>",
        p.name
    )
}

/// The EDMX document pyodata and the SAP Cloud SDK load before anything else.
pub fn edmx(svc: &Service) -> String {
    let ns = svc.name;
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<edmx:Edmx Version=\"1.0\" xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\" xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\" xmlns:sap=\"http://www.sap.com/Protocols/SAPData\">\
<edmx:DataServices m:DataServiceVersion=\"2.0\">",
    );
    x.push_str(&format!(
        "<Schema Namespace=\"{ns}\" xml:lang=\"en\" sap:schema-version=\"1\" xmlns=\"http://schemas.microsoft.com/ado/2008/09/edm\">"
    ));
    for e in svc.entities {
        x.push_str(&format!(
            "<EntityType Name=\"{}\" sap:content-version=\"1\"><Key>",
            e.type_name
        ));
        for k in e.keys {
            x.push_str(&format!("<PropertyRef Name=\"{k}\"/>"));
        }
        x.push_str("</Key>");
        for p in e.props {
            x.push_str(&prop_xml(p));
        }
        for (nav, _, _) in e.navs {
            let a = assoc_name(e, nav);
            x.push_str(&format!(
                "<NavigationProperty Name=\"{nav}\" Relationship=\"{ns}.{a}\" FromRole=\"FromRole_{a}\" ToRole=\"ToRole_{a}\"/>"
            ));
        }
        x.push_str("</EntityType>");
    }
    for e in svc.entities {
        for (nav, target, many) in e.navs {
            let a = assoc_name(e, nav);
            let t = svc.entity(target).map_or("", |t| t.type_name);
            x.push_str(&format!(
                "<Association Name=\"{a}\" sap:content-version=\"1\"><End Type=\"{ns}.{}\" Multiplicity=\"1\" Role=\"FromRole_{a}\"/><End Type=\"{ns}.{t}\" Multiplicity=\"{}\" Role=\"ToRole_{a}\"/></Association>",
                e.type_name,
                if *many { "*" } else { "1" }
            ));
        }
    }
    x.push_str(&format!("<EntityContainer Name=\"{ns}_Entities\" m:IsDefaultEntityContainer=\"true\" sap:supported-formats=\"atom json xlsx pdf\">"));
    for e in svc.entities {
        x.push_str(&format!(
            "<EntitySet Name=\"{}\" EntityType=\"{ns}.{}\" sap:content-version=\"1\"/>",
            e.set, e.type_name
        ));
    }
    for e in svc.entities {
        for (nav, target, _) in e.navs {
            let a = assoc_name(e, nav);
            x.push_str(&format!(
                "<AssociationSet Name=\"{a}\" Association=\"{ns}.{a}\" sap:creatable=\"false\" sap:updatable=\"false\" sap:deletable=\"false\" sap:content-version=\"1\"><End EntitySet=\"{}\" Role=\"FromRole_{a}\"/><End EntitySet=\"{target}\" Role=\"ToRole_{a}\"/></AssociationSet>",
                e.set
            ));
        }
    }
    x.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    x
}

/// AtomPub service document (the default when JSON is not asked for).
pub fn service_xml(svc: &Service, base: &str) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><app:service xml:base=\"{base}/sap/opu/odata/sap/{}/\" xmlns:app=\"http://www.w3.org/2007/app\" xmlns:atom=\"http://www.w3.org/2005/Atom\"><app:workspace><atom:title type=\"text\">Data</atom:title>",
        svc.name
    );
    for e in svc.entities {
        x.push_str(&format!(
            "<app:collection href=\"{}\"><atom:title type=\"text\">{}</atom:title></app:collection>",
            e.set, e.set
        ));
    }
    x.push_str("</app:workspace></app:service>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edmx_declares_every_set_and_navigation() {
        let x = edmx(&PURCHASE_ORDER);
        assert!(x.contains("<EntitySet Name=\"A_PurchaseOrder\" EntityType=\"API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType\""));
        assert!(x.contains("NavigationProperty Name=\"to_PurchaseOrderItem\""));
        assert!(x.contains("Name=\"LastChangeDateTime\" Type=\"Edm.DateTimeOffset\""));
        assert_eq!(x.matches("<EntityType ").count(), 5);
        assert!(x.contains("<Property Name=\"ExchangeRate\" Type=\"Edm.String\" MaxLength=\"12\""));
        assert!(x.contains("Name=\"NetPriceAmount\" Type=\"Edm.Decimal\" Precision=\"12\" Scale=\"3\" sap:unit=\"DocumentCurrency\""));
        assert!(edmx(&PRODUCT).contains("to_Description"));
    }
}
