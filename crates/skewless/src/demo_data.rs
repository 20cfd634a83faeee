//! A deterministic ride-hailing data set for the demo and for tests.
//!
//! Same seed, same bytes: the generator uses its own SplitMix64 (no dependency whose
//! stream could change between versions) and writes Parquet with fixed settings. The data
//! is shaped to exercise the point-in-time rules, not just to fill tables:
//!
//! - irregular event times (jitter down to the microsecond, skipped hours);
//! - corrections: a second row with the *same* event time and a later `created`;
//! - late rows: `created` hours or days after the event (what `as_of: available` guards);
//! - entities without rows (drivers 1099 and 1100, customers 5199 and 5200);
//! - a few rows that break the declared contracts (a conversion rate above 1, a missing tier),
//!   so quarantine has something to catch;
//! - a spine of trips to build a training set for, with a label and a request field, that
//!   includes keys with no feature rows at all.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::{Error, Result};

/// 2026-11-01T00:00:00Z in microseconds since the epoch.
pub const START_MICROS: i64 = 1_793_491_200_000_000;
pub const DAYS: i64 = 14;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
pub const DRIVERS: std::ops::RangeInclusive<i64> = 1001..=1100;
pub const CUSTOMERS: std::ops::RangeInclusive<i64> = 5001..=5200;
/// Entities that exist (they appear in the spine) but have no feature rows.
const SILENT_DRIVERS: [i64; 2] = [1099, 1100];
const SILENT_CUSTOMERS: [i64; 2] = [5199, 5200];

/// What was written, for the summary the CLI prints.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub file: PathBuf,
    pub rows: usize,
}

/// SplitMix64: tiny, fast, and fixed forever, which is what a reproducible demo needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }

    fn round(x: f64, digits: i32) -> f64 {
        let scale = 10f64.powi(digits);
        (x * scale).round() / scale
    }
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn ts(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn write(dir: &Path, name: &str, fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Written> {
    let path = dir.join(name);
    let err = |e: &dyn std::fmt::Display| Error::Write {
        path: path.clone(),
        message: e.to_string(),
    };
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| err(&e))?;
    let file = File::create(&path).map_err(|e| err(&e))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| err(&e))?;
    writer.write(&batch).map_err(|e| err(&e))?;
    writer.close().map_err(|e| err(&e))?;
    Ok(Written {
        file: path,
        rows: batch.num_rows(),
    })
}

/// Writes the demo tables into `dir` (created if needed).
pub fn generate(dir: &Path, seed: u64) -> Result<Vec<Written>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Write {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut rng = Rng(seed);
    let trips = trips(&mut rng);
    Ok(vec![
        driver_hourly_stats(dir, &mut rng)?,
        customer_profile(dir, &mut rng)?,
        write_trips(dir, &trips)?,
        spine(dir, &mut rng, &trips)?,
    ])
}

fn driver_hourly_stats(dir: &Path, rng: &mut Rng) -> Result<Written> {
    let (mut ids, mut events, mut created, mut conv, mut acc, mut daily) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for driver in DRIVERS.filter(|d| !SILENT_DRIVERS.contains(d)) {
        let skill = 0.2 + 0.6 * rng.unit();
        for hour in 0..DAYS * 24 {
            if rng.chance(0.2) {
                continue; // an hour without stats
            }
            let event = START_MICROS + hour * HOUR + rng.range(0, HOUR);
            let late = rng.chance(0.02);
            let landed = event
                + if late {
                    rng.range(HOUR, 2 * DAY)
                } else {
                    rng.range(1_000_000, 300_000_000)
                };
            // About one row in 500 breaks the [0, 1] contract, as a bad upstream job would.
            let c = if rng.chance(0.002) {
                1.0 + rng.unit()
            } else {
                (skill + 0.2 * (rng.unit() - 0.5)).clamp(0.0, 1.0)
            };
            let row = (
                Rng::round(c, 4),
                Rng::round((skill + 0.1 * rng.unit()).min(1.0), 4),
                rng.range(5, 40),
            );
            let mut push = |at: i64, (c, a, d): (f64, f64, i64)| {
                ids.push(driver);
                events.push(event);
                created.push(at);
                conv.push(c);
                acc.push(a);
                daily.push(d);
            };
            push(landed, row);
            if rng.chance(0.03) {
                // A correction: same event time, landed later, different values.
                let fixed = (Rng::round((row.0 * 0.9).min(1.0), 4), row.1, row.2 + 1);
                push(landed + rng.range(HOUR, 6 * HOUR), fixed);
            }
        }
    }
    let fields = vec![
        Field::new("driver_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        ts_field("created"),
        Field::new("conv_rate", DataType::Float64, true),
        Field::new("acc_rate", DataType::Float64, true),
        Field::new("avg_daily_trips", DataType::Int64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        ts(events),
        ts(created),
        Arc::new(Float64Array::from(conv)),
        Arc::new(Float64Array::from(acc)),
        Arc::new(Int64Array::from(daily)),
    ];
    write(dir, "driver_hourly_stats.parquet", fields, columns)
}

fn customer_profile(dir: &Path, rng: &mut Rng) -> Result<Written> {
    let (mut ids, mut events, mut created, mut balance, mut trips, mut tier) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for customer in CUSTOMERS.filter(|c| !SILENT_CUSTOMERS.contains(c)) {
        let mut count = rng.range(0, 200);
        let mut money = 50.0 + 500.0 * rng.unit();
        for day in 0..DAYS {
            if rng.chance(0.1) {
                continue;
            }
            let event = START_MICROS + day * DAY + rng.range(0, 2 * HOUR);
            count += rng.range(0, 4);
            money = (money + 40.0 * (rng.unit() - 0.5)).max(0.0);
            ids.push(customer);
            events.push(event);
            created.push(
                event
                    + if rng.chance(0.05) {
                        rng.range(DAY, 3 * DAY)
                    } else {
                        rng.range(60_000_000, HOUR)
                    },
            );
            balance.push(Rng::round(money, 2));
            trips.push(count);
            tier.push(match count {
                _ if rng.chance(0.003) => None, // breaks `nullable: false`
                0..=49 => Some("basic"),
                50..=149 => Some("plus"),
                _ => Some("premium"),
            });
        }
    }
    let fields = vec![
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        ts_field("created"),
        Field::new("current_balance", DataType::Float64, true),
        Field::new("lifetime_trip_count", DataType::Int64, true),
        Field::new("tier", DataType::Utf8, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        ts(events),
        ts(created),
        Arc::new(Float64Array::from(balance)),
        Arc::new(Int64Array::from(trips)),
        Arc::new(StringArray::from(tier)),
    ];
    write(dir, "customer_profile.parquet", fields, columns)
}

struct Trip {
    id: i64,
    driver: i64,
    customer: i64,
    event: i64,
    created: i64,
    distance_km: f64,
    fare: f64,
    rating: Option<i64>,
}

fn trips(rng: &mut Rng) -> Vec<Trip> {
    let span = DAYS * DAY;
    (0..5000)
        .map(|i| {
            let driver = rng.range(*DRIVERS.start(), *DRIVERS.end() - 1); // never a silent driver
            let customer = rng.range(*CUSTOMERS.start(), *CUSTOMERS.end() - 1);
            let event = START_MICROS + rng.range(0, span);
            let created = event
                + if rng.chance(0.03) {
                    rng.range(2 * HOUR, DAY)
                } else {
                    rng.range(1_000_000, 120_000_000)
                };
            let distance_km = Rng::round(0.5 + 29.5 * rng.unit() * rng.unit(), 2);
            let fare = Rng::round(2.5 + distance_km * 1.2 * (1.0 + rng.unit()), 2);
            let rating = (!rng.chance(0.3)).then(|| rng.range(1, 6));
            Trip {
                id: 900_000 + i,
                driver,
                customer,
                event,
                created,
                distance_km,
                fare,
                rating,
            }
        })
        .collect()
}

fn write_trips(dir: &Path, trips: &[Trip]) -> Result<Written> {
    let fields = vec![
        Field::new("trip_id", DataType::Int64, false),
        Field::new("driver_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        ts_field("created"),
        Field::new("last_trip_distance_km", DataType::Float64, true),
        Field::new("fare", DataType::Float64, true),
        Field::new("rating", DataType::Int64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(trips.iter().map(|t| t.id))),
        Arc::new(Int64Array::from_iter_values(trips.iter().map(|t| t.driver))),
        Arc::new(Int64Array::from_iter_values(trips.iter().map(|t| t.customer))),
        ts(trips.iter().map(|t| t.event).collect()),
        ts(trips.iter().map(|t| t.created).collect()),
        Arc::new(Float64Array::from_iter_values(trips.iter().map(|t| t.distance_km))),
        Arc::new(Float64Array::from_iter_values(trips.iter().map(|t| t.fare))),
        Arc::new(Int64Array::from(trips.iter().map(|t| t.rating).collect::<Vec<_>>())),
    ];
    write(dir, "trips.parquet", fields, columns)
}

/// Ride requests to score: the moment a driver was offered a ride, with the request's
/// distance and whether the ride was accepted (the label). Some requests name entities
/// that have no feature rows.
fn spine(dir: &Path, rng: &mut Rng, trips: &[Trip]) -> Result<Written> {
    let (mut drivers, mut customers, mut events, mut distance, mut label) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..2000 {
        let trip = &trips[rng.range(0, trips.len() as i64) as usize];
        let silent = rng.chance(0.02);
        drivers.push(if silent {
            SILENT_DRIVERS[rng.range(0, 2) as usize]
        } else {
            trip.driver
        });
        customers.push(if silent {
            SILENT_CUSTOMERS[rng.range(0, 2) as usize]
        } else {
            trip.customer
        });
        // The offer precedes the trip by up to 10 minutes.
        events.push(trip.event - rng.range(0, 600_000_000));
        distance.push(trip.distance_km);
        label.push(rng.chance(0.7));
    }
    let fields = vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        Field::new("distance_km", DataType::Float64, false),
        Field::new("accepted", DataType::Boolean, false),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(drivers)),
        Arc::new(Int64Array::from(customers)),
        ts(events),
        Arc::new(Float64Array::from(distance)),
        Arc::new(BooleanArray::from(label)),
    ];
    write(dir, "ride_requests_spine.parquet", fields, columns)
}
