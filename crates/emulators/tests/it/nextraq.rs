//! The NexTraq web-app emulator over HTTP: the form login and its session cookie, sessions
//! expiring on the emulator's clock, vehicles the user may not see, the one-day trail and its
//! 200-day limit.

use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use reqwest::{Client, Method};
use serde_json::{Value, json};

use crate::support::{admin_json, start_with};

const USER: &str = "dispatcher@example.com";
const PASSWORD: &str = "Emulator-Pa55word";

struct Nx {
    emu: RunningEmulator,
    http: Client,
    cookie: String,
}

fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Nx {
    async fn start(vehicles: u64) -> Nx {
        let emu = start_with(EmulatorConfig::new(System::NexTraq, 42, vehicles)).await;
        let mut nx = Nx {
            emu,
            http: no_redirects(),
            cookie: String::new(),
        };
        nx.cookie = nx.login(USER, PASSWORD).await.expect("a session");
        nx
    }

    /// Posts the login form; the session cookie when it succeeds.
    async fn login(&self, user: &str, password: &str) -> Option<String> {
        let r = self
            .http
            .post(format!("{}/j_security_check", self.emu.base_url()))
            .form(&[("j_username", user), ("j_password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
        let location = r.headers()["location"].to_str().unwrap();
        match &cookie {
            Some(c) => {
                assert!(c.starts_with("JSESSIONID="), "{c}");
                assert_eq!(location, "/instaview/map.html");
            }
            None => assert_eq!(location, "/login.html?error=true"),
        }
        cookie
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.emu.base_url()))
            .header("cookie", format!("_ga=GA1.2.1; {}", self.cookie))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn advance_secs(&self, secs: i64) {
        admin_json(
            &self.emu,
            Method::POST,
            "/clock",
            Some(json!({"advance_seconds": secs})),
        )
        .await;
    }

    fn trail(mobile: u64, date: &str) -> String {
        format!(
            "/json/mobiles/trail?lastThirty=false&date={date}&startTime=0&endTime=86340000&mobileId={mobile}&calcDistance=true&includeEvents=true&rnd=1552582940908"
        )
    }
}

#[tokio::test]
async fn a_form_login_gives_a_session_cookie_and_nothing_works_without_one() {
    let nx = Nx::start(8).await;
    assert_eq!(nx.login(USER, "wrong").await, None);
    assert_eq!(nx.login("someone@else", PASSWORD).await, None);
    let anonymous = no_redirects()
        .get(format!("{}/json/mobiles", nx.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let forged = no_redirects()
        .get(format!("{}/json/mobiles", nx.emu.base_url()))
        .header("cookie", "JSESSIONID=1Xtm0Ysh6SPMQVi4Yc5scANn.web-1")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let map = no_redirects()
        .get(format!("{}/instaview/map.html", nx.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(map.status(), 302);
    let (status, body) = nx.get("/json/mobiles").await;
    assert_eq!(status, 200, "{body}");
    // A revoked login ends its sessions.
    admin_json(&nx.emu, Method::POST, "/credentials/revoke", None).await;
    assert_eq!(nx.get("/json/mobiles").await.0, 401);
}

#[tokio::test]
async fn vehicles_of_hidden_fleets_are_not_listed_and_their_trail_is_403() {
    let nx = Nx::start(8).await;
    let (_, body) = nx.get("/json/mobiles").await;
    let mobiles = body["data"]["mobiles"].as_array().unwrap();
    // Vehicles 3 and 7 are in the Executive fleet, hidden by default.
    assert_eq!(mobiles.len(), 6);
    assert!(
        mobiles
            .iter()
            .all(|m| m["primaryFleet"]["name"] != "Executive")
    );
    let ids: Vec<u64> = mobiles
        .iter()
        .map(|m| m["mobileId"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&100_003) && ids.contains(&100_004));
    let (status, _) = nx.get(&Nx::trail(100_003, "12/31/2025")).await;
    assert_eq!(status, 403);
    let (status, _) = nx.get(&Nx::trail(999_999, "12/31/2025")).await;
    assert_eq!(status, 403);
    let (status, _) = nx.get(&Nx::trail(100_004, "12/31/2025")).await;
    assert_eq!(status, 200);
    // Showing the fleet again lets the user read it.
    admin_json(
        &nx.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"hidden_fleets": []})),
    )
    .await;
    assert_eq!(nx.get(&Nx::trail(100_003, "12/31/2025")).await.0, 200);
    let (_, body) = nx.get("/json/mobiles").await;
    assert_eq!(body["data"]["mobiles"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn a_trail_is_one_local_day_of_one_vehicle() {
    let nx = Nx::start(4).await;
    // The clock starts at 2026-01-01T00:00Z, 7 PM on Dec 31 in New York.
    let (status, body) = nx.get(&Nx::trail(100_001, "12/30/2025")).await;
    assert_eq!(status, 200);
    let tracks = body["data"]["tracks"].as_array().unwrap();
    // One point a minute from midnight to 23:59 local (`endTime` 86,340,000 ms): 1439 minutes,
    // one more point if the vehicle reports on the minute.
    assert!((1439..=1440).contains(&tracks.len()), "{}", tracks.len());
    let first = &tracks[0];
    assert!(
        first["dateDisplay"]
            .as_str()
            .unwrap()
            .starts_with("12/30/2025 12:0"),
        "{first}"
    );
    assert!(first["dateDisplay"].as_str().unwrap().ends_with(" EST"));
    assert_eq!(first["mobile"]["mobileId"], 100_001);
    assert!(first["mobile"]["primaryFleet"]["name"].is_string());
    assert!(
        first["address"]["street"].is_string() && first["address"]["postedSpeedMph"].is_number()
    );
    assert!(first["speedDisplay"].as_str().unwrap().ends_with(" mph"));
    assert!(first["lat"].is_number() && first["lon"].is_number());
    assert!(
        ["N", "NE", "E", "SE", "S", "SW", "W", "NW"].contains(&first["heading"].as_str().unwrap())
    );
    let miles: Vec<f64> = tracks
        .iter()
        .map(|t| t["calculatedMileage"].as_f64().unwrap())
        .collect();
    assert_eq!(miles[0], 0.0);
    assert!(miles.windows(2).all(|w| w[0] <= w[1]) && miles[miles.len() - 1] > 1.0);
    // Today so far: up to the clock (7 PM local), and more as it advances.
    let (_, today) = nx.get(&Nx::trail(100_001, "12/31/2025")).await;
    let n = today["data"]["tracks"].as_array().unwrap().len();
    assert!((1139..=1141).contains(&n), "{n}");
    nx.advance_secs(600).await;
    let (_, later) = nx.get(&Nx::trail(100_001, "12/31/2025")).await;
    assert_eq!(later["data"]["tracks"].as_array().unwrap().len(), n + 10);
    // A window within the day.
    let (_, hour) = nx
        .get(
            "/json/mobiles/trail?date=12/30/2025&startTime=3600000&endTime=7199999&mobileId=100001",
        )
        .await;
    assert_eq!(hour["data"]["tracks"].as_array().unwrap().len(), 60);
    for bad in [
        "/json/mobiles/trail?date=2025-12-30&mobileId=100001",
        "/json/mobiles/trail?date=12/30/2025",
        "/json/mobiles/trail?date=12/30/2025&mobileId=100001&startTime=5&endTime=1",
        "/json/mobiles/trail?date=12/30/2025&mobileId=100001&endTime=99999999",
    ] {
        let (status, body) = nx.get(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn sessions_expire_when_idle_on_the_emulator_clock() {
    let nx = Nx::start(4).await;
    nx.advance_secs(20 * 60).await;
    assert_eq!(nx.get("/json/mobiles").await.0, 200);
    // Used 20 minutes ago: still alive after another 20 (idle time, not age).
    nx.advance_secs(20 * 60).await;
    assert_eq!(nx.get("/json/mobiles").await.0, 200);
    nx.advance_secs(31 * 60).await;
    let (status, body) = nx.get(&Nx::trail(100_001, "12/30/2025")).await;
    assert_eq!(status, 401);
    assert!(body["message"].is_string());
    // Gone for good, even if the clock went back.
    admin_json(
        &nx.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": -3600})),
    )
    .await;
    assert_eq!(nx.get("/json/mobiles").await.0, 401);
    let mut fresh = Nx {
        emu: nx.emu,
        http: no_redirects(),
        cookie: String::new(),
    };
    fresh.cookie = fresh.login(USER, PASSWORD).await.unwrap();
    assert_eq!(fresh.get("/json/mobiles").await.0, 200);
    // Without sliding sessions, a session ends a fixed time after its last renewal.
    admin_json(
        &fresh.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"session_sliding": false, "session_idle_secs": 60})),
    )
    .await;
    fresh.advance_secs(30).await;
    assert_eq!(fresh.get("/json/mobiles").await.0, 200);
    fresh.advance_secs(31).await;
    assert_eq!(fresh.get("/json/mobiles").await.0, 401);
}

#[tokio::test]
async fn history_reaches_back_200_days_and_no_further() {
    let nx = Nx::start(2).await;
    // Local today is 12/31/2025: day 199 back is 06/15/2025, day 200 is 06/14/2025.
    let (status, body) = nx.get(&Nx::trail(100_001, "06/15/2025")).await;
    assert_eq!(status, 200);
    assert!(
        body["data"]["tracks"][0]["dateDisplay"]
            .as_str()
            .unwrap()
            .ends_with(" EDT")
    );
    let (status, body) = nx.get(&Nx::trail(100_001, "06/14/2025")).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("200 days"));
    admin_json(
        &nx.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"history_days": 365})),
    )
    .await;
    assert_eq!(nx.get(&Nx::trail(100_001, "06/14/2025")).await.0, 200);
    // A day still to come has no points yet.
    let (_, future) = nx.get(&Nx::trail(100_001, "01/05/2026")).await;
    assert_eq!(future["data"]["tracks"], json!([]));
}
