//! How SAP Gateway writes `Edm.Decimal` values: quantities with the decimals of their unit of
//! measure, amounts with those of their currency, other numbers with the declared scale.

use serde::{Deserialize, Serialize};

use super::model::{Edm, Measure};

/// Which rendering of decimals the emulated tenant shows (`decimal_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecimalFormat {
    /// As S/4HANA Cloud answers (recorded sandbox payloads): `"OrderQuantity":"1"` for pieces,
    /// `"ItemNetWeight":"0.900"` for kilograms, `"NetPriceAmount":"40.00"` for dollars.
    #[default]
    Unit,
    /// Every decimal padded to its declared scale (`"1.000"`, `"40.000"`), as some on-premise
    /// releases show quantities (a recorded `API_SALES_ORDER_SRV` payload has
    /// `"RequestedQuantity":"1.000"`).
    Scale,
}

/// Decimals of a currency (table TCURX): most have two; these are the ISO 4217 exceptions.
pub fn currency_decimals(code: &str) -> u32 {
    match code {
        "JPY" | "KRW" | "CLP" | "ISK" | "VND" | "HUF" | "PYG" | "UGX" | "XAF" | "XOF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// Decimals SAP shows for a unit of measure (T006 `DECAN`): countable units none; weights,
/// lengths and volumes three [I: the table's values per unit].
pub fn unit_decimals(code: &str) -> u32 {
    match code {
        "KG" | "G" | "TO" | "LB" | "M" | "KM" | "CM" | "MM" | "L" | "ML" | "M3" | "M2" | "GAL" => 3,
        _ => 0,
    }
}

/// The text SAP writes for `v`, a number of type `ty` (`Edm.Decimal`), whose unit or currency
/// (`measure`, with the code the entity holds) sets its decimals. As ABAP's `WRITE ... UNIT`,
/// the shorter form is used only when the digits it drops are zeros.
pub fn decimal_text(
    v: f64,
    ty: Edm,
    measure: Option<(Measure, &str)>,
    format: DecimalFormat,
) -> String {
    let scale = match ty {
        Edm::Dec(_, s) => s,
        _ => 0,
    };
    let wanted = match (format, measure) {
        (DecimalFormat::Unit, Some((Measure::Unit(_), code))) => unit_decimals(code),
        // Both recordings (cloud and on-premise) show amounts with the currency's decimals.
        (_, Some((Measure::Currency(_), code))) => currency_decimals(code),
        _ => scale,
    };
    // Never more decimals than the property has.
    let wanted = wanted.min(scale);
    let digits = if wanted < scale && !drops_only_zeros(v, scale, wanted) {
        scale
    } else {
        wanted
    };
    format!("{v:.prec$}", prec = digits as usize)
}

fn drops_only_zeros(v: f64, scale: u32, wanted: u32) -> bool {
    let at_scale = (v * 10f64.powi(scale as i32)).round();
    let step = 10f64.powi((scale - wanted) as i32);
    (at_scale % step).abs() < 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_by_unit_amounts_by_currency() {
        let qty = Some((Measure::Unit("PurchaseOrderQuantityUnit"), "PC"));
        let kg = Some((Measure::Unit("ItemWeightUnit"), "KG"));
        let usd = Some((Measure::Currency("DocumentCurrency"), "USD"));
        let jpy = Some((Measure::Currency("DocumentCurrency"), "JPY"));
        let u = DecimalFormat::Unit;
        assert_eq!(decimal_text(100.0, Edm::Dec(13, 3), qty, u), "100");
        assert_eq!(decimal_text(1.5, Edm::Dec(13, 3), qty, u), "1.500");
        assert_eq!(decimal_text(0.9, Edm::Dec(13, 3), kg, u), "0.900");
        assert_eq!(decimal_text(0.1, Edm::Dec(12, 3), usd, u), "0.10");
        assert_eq!(decimal_text(40.0, Edm::Dec(12, 3), usd, u), "40.00");
        assert_eq!(decimal_text(1200.0, Edm::Dec(12, 3), jpy, u), "1200");
        assert_eq!(decimal_text(10.0, Edm::Dec(3, 1), None, u), "10.0");
        let s = DecimalFormat::Scale;
        assert_eq!(decimal_text(100.0, Edm::Dec(13, 3), qty, s), "100.000");
        assert_eq!(decimal_text(40.0, Edm::Dec(12, 3), usd, s), "40.00");
    }
}
