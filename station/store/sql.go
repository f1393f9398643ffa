package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/station/identity"
)

// dialect is where SQLite and PostgreSQL differ.
type dialect interface {
	name() string
	// idColumn is an auto-increment primary key column.
	idColumn() string
	// forUpdate is appended to a SELECT that reads a row this
	// transaction will change: PostgreSQL locks it; SQLite's whole
	// database is locked already (BEGIN IMMEDIATE).
	forUpdate() string
	// rebind turns ? placeholders into the database's own.
	rebind(q string) string
	// lockSchema serialises schema creation between stations.
	lockSchema(ctx context.Context, tx *sql.Tx) error
	// isUnique reports whether err is a unique constraint violation.
	isUnique(err error) bool
	// relax lowers the durability of the writes that follow, until
	// undone: for event logs, whose loss in a power cut costs some
	// progress lines, never an identity. inTx is called inside the
	// transaction, before runs outside it (each database has its own
	// rule for where the setting may change).
	relaxBefore(ctx context.Context, db *sql.DB) (undo func())
	relaxInTx(ctx context.Context, tx *sql.Tx) error
}

// sqlStore implements Store on database/sql.
type sqlStore struct {
	db *sql.DB
	d  dialect
}

func (s *sqlStore) schema() []string {
	id := s.d.idColumn()
	return []string{
		`CREATE TABLE IF NOT EXISTS units (
			id ` + id + `,
			hw_key TEXT NOT NULL UNIQUE,
			board TEXT NOT NULL,
			revision TEXT NOT NULL,
			emmc_cid TEXT NOT NULL,
			cpu_serial TEXT NOT NULL,
			mac TEXT NOT NULL,
			serial TEXT UNIQUE,
			certificate TEXT,
			private_key TEXT,
			created BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS unit_macs (
			mac TEXT PRIMARY KEY,
			unit_id BIGINT NOT NULL REFERENCES units(id),
			idx INTEGER NOT NULL,
			UNIQUE (unit_id, idx))`,
		`CREATE TABLE IF NOT EXISTS scanned_serials (
			id ` + id + `,
			serial TEXT NOT NULL UNIQUE,
			hw_key TEXT NOT NULL,
			unit_id BIGINT REFERENCES units(id),
			scanned BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS counters (
			name TEXT PRIMARY KEY,
			next BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS runs (
			id ` + id + `,
			unit_id BIGINT NOT NULL REFERENCES units(id),
			attempt INTEGER NOT NULL,
			station TEXT NOT NULL,
			bundle TEXT NOT NULL,
			product TEXT NOT NULL,
			version TEXT NOT NULL,
			started BIGINT NOT NULL,
			finished BIGINT,
			result TEXT NOT NULL DEFAULT '',
			reason TEXT NOT NULL DEFAULT '',
			read_back TEXT NOT NULL DEFAULT '',
			steps TEXT NOT NULL DEFAULT '',
			seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
			UNIQUE (unit_id, attempt))`,
		// At most one open run per unit: two stations answering the same
		// board's announce at once cannot open two.
		`CREATE UNIQUE INDEX IF NOT EXISTS runs_open ON runs (unit_id) WHERE finished IS NULL`,
		`CREATE INDEX IF NOT EXISTS runs_finished ON runs (finished)`,
		`CREATE TABLE IF NOT EXISTS events (
			run_id BIGINT NOT NULL REFERENCES runs(id),
			seq INTEGER NOT NULL,
			kind TEXT NOT NULL,
			time BIGINT NOT NULL,
			body TEXT NOT NULL,
			PRIMARY KEY (run_id, seq))`,
	}
}

func (s *sqlStore) init(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.d.lockSchema(ctx, tx); err != nil {
			return err
		}
		for _, q := range s.schema() {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("store: schema: %w", err)
			}
		}
		return nil
	})
}

// tx runs f in a transaction, retrying a few times when it lost a race on
// a unique constraint (two stations creating the same row at once): the
// retry then finds the row.
func (s *sqlStore) tx(ctx context.Context, f func(*sql.Tx) error) error {
	var err error
	for try := 0; try < 5; try++ {
		err = s.tx1(ctx, f)
		if err == nil || !s.d.isUnique(err) {
			return err
		}
	}
	return err
}

func (s *sqlStore) tx1(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *sqlStore) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, s.d.rebind(query), args...)
}

func (s *sqlStore) row(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, s.d.rebind(query), args...)
}

func (s *sqlStore) Close() error { return s.db.Close() }

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64)
}

func (s *sqlStore) Announce(ctx context.Context, a NewRun) (Run, bool, error) {
	key := a.Hardware.Key()
	if key == "" {
		return Run{}, false, fmt.Errorf("store: announce without hardware ids")
	}
	var id int64
	var resumed bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		resumed = false
		if _, err := s.exec(ctx, tx, `INSERT INTO units (hw_key, board, revision, emmc_cid, cpu_serial, mac, created)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hw_key) DO NOTHING`,
			key, a.Board, a.Revision, a.Hardware.EMMCCID, a.Hardware.CPUSerial, a.Hardware.MAC, nanos(a.Time)); err != nil {
			return fmt.Errorf("store: announce: %w", err)
		}
		var unit int64
		if err := s.row(ctx, tx, `SELECT id FROM units WHERE hw_key = ?`+s.d.forUpdate(), key).Scan(&unit); err != nil {
			return fmt.Errorf("store: announce: %w", err)
		}
		// The board may have been re-labelled (another revision): keep
		// what it says now.
		if _, err := s.exec(ctx, tx, `UPDATE units SET board = ?, revision = ? WHERE id = ?`, a.Board, a.Revision, unit); err != nil {
			return fmt.Errorf("store: announce: %w", err)
		}
		err := s.row(ctx, tx, `SELECT id FROM runs WHERE unit_id = ? AND finished IS NULL`, unit).Scan(&id)
		if err == nil {
			resumed = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: announce: %w", err)
		}
		var attempts int
		if err := s.row(ctx, tx, `SELECT COUNT(*) FROM runs WHERE unit_id = ?`, unit).Scan(&attempts); err != nil {
			return fmt.Errorf("store: announce: %w", err)
		}
		err = s.row(ctx, tx, `INSERT INTO runs (unit_id, attempt, station, bundle, product, version, started)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			unit, attempts+1, a.Station, a.Bundle, a.Product, a.Version, nanos(a.Time)).Scan(&id)
		if err != nil {
			return fmt.Errorf("store: announce: %w", err)
		}
		return nil
	})
	if err != nil {
		return Run{}, false, err
	}
	r, err := s.Run(ctx, id)
	return r, resumed, err
}

func (s *sqlStore) Allocate(ctx context.Context, unit int64, p Pools) (identity.Identity, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var serial sql.NullString
		var hwKey string
		if err := s.row(ctx, tx, `SELECT serial, hw_key FROM units WHERE id = ?`+s.d.forUpdate(), unit).Scan(&serial, &hwKey); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: unit %d", ErrNotFound, unit)
			}
			return fmt.Errorf("store: allocate: %w", err)
		}
		if serial.Valid {
			return nil // allocated before: the same identity again
		}
		sn, err := s.nextSerial(ctx, tx, unit, hwKey, p)
		if err != nil {
			return err
		}
		if p.MACs != nil {
			n, err := s.counter(ctx, tx, "mac "+p.MACs.Name(), 0)
			if err != nil {
				return err
			}
			if uint64(n) >= p.MACs.Units() {
				return fmt.Errorf("%w: the MAC pool %s is used up (%d units served)", ErrExhausted, p.MACs.Name(), p.MACs.Units())
			}
			for i, mac := range p.MACs.Block(uint64(n)) {
				if _, err := s.exec(ctx, tx, `INSERT INTO unit_macs (mac, unit_id, idx) VALUES (?, ?, ?)`, mac, unit, i); err != nil {
					return fmt.Errorf("store: allocate MAC %s: %w", mac, err)
				}
			}
			if _, err := s.exec(ctx, tx, `UPDATE counters SET next = ? WHERE name = ?`, n+1, "mac "+p.MACs.Name()); err != nil {
				return fmt.Errorf("store: allocate: %w", err)
			}
		}
		if _, err := s.exec(ctx, tx, `UPDATE units SET serial = ? WHERE id = ?`, sn, unit); err != nil {
			return fmt.Errorf("store: allocate serial %s: %w", sn, err)
		}
		return nil
	})
	if err != nil {
		return identity.Identity{}, err
	}
	u, err := s.Unit(ctx, unit)
	return u.Identity, err
}

// nextSerial takes a scanned serial (this board's, else the oldest one
// waiting) or the range's next one that no unit has.
func (s *sqlStore) nextSerial(ctx context.Context, tx *sql.Tx, unit int64, hwKey string, p Pools) (string, error) {
	if p.Scanned {
		var id int64
		var sn string
		err := s.row(ctx, tx, `SELECT id, serial FROM scanned_serials WHERE unit_id IS NULL AND (hw_key = ? OR hw_key = '')
			ORDER BY CASE WHEN hw_key = '' THEN 1 ELSE 0 END, id LIMIT 1`+s.d.forUpdate(), hwKey).Scan(&id, &sn)
		switch {
		case err == nil:
			if _, err := s.exec(ctx, tx, `UPDATE scanned_serials SET unit_id = ? WHERE id = ?`, unit, id); err != nil {
				return "", fmt.Errorf("store: allocate: %w", err)
			}
			return sn, nil
		case !errors.Is(err, sql.ErrNoRows):
			return "", fmt.Errorf("store: allocate: %w", err)
		}
		if p.Serials == nil {
			return "", fmt.Errorf("%w: no scanned serial number is waiting: scan the board's label", ErrExhausted)
		}
	}
	if p.Serials == nil {
		return "", fmt.Errorf("store: allocate: no serial range and no scanned serials")
	}
	r := p.Serials
	n, err := s.counter(ctx, tx, "serial "+r.Name(), int64(r.First))
	if err != nil {
		return "", err
	}
	for ; uint64(n) <= r.Last; n++ {
		sn := r.Serial(uint64(n))
		// A serial of the range may have been scanned for a unit: skip it.
		var taken int
		if err := s.row(ctx, tx, `SELECT COUNT(*) FROM units WHERE serial = ?`, sn).Scan(&taken); err != nil {
			return "", fmt.Errorf("store: allocate: %w", err)
		}
		if taken == 0 {
			if _, err := s.exec(ctx, tx, `UPDATE counters SET next = ? WHERE name = ?`, n+1, "serial "+r.Name()); err != nil {
				return "", fmt.Errorf("store: allocate: %w", err)
			}
			return sn, nil
		}
	}
	return "", fmt.Errorf("%w: the serial range %s is used up", ErrExhausted, r.Name())
}

// counter reads a counter, creating it at init, locked for this
// transaction.
func (s *sqlStore) counter(ctx context.Context, tx *sql.Tx, name string, init int64) (int64, error) {
	if _, err := s.exec(ctx, tx, `INSERT INTO counters (name, next) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, init); err != nil {
		return 0, fmt.Errorf("store: counter %s: %w", name, err)
	}
	var n int64
	if err := s.row(ctx, tx, `SELECT next FROM counters WHERE name = ?`+s.d.forUpdate(), name).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: counter %s: %w", name, err)
	}
	return n, nil
}

func (s *sqlStore) SetCredentials(ctx context.Context, unit int64, cert, key string) (identity.Identity, error) {
	if _, err := s.exec(ctx, s.db, `UPDATE units SET certificate = ?, private_key = ? WHERE id = ? AND certificate IS NULL`, cert, key, unit); err != nil {
		return identity.Identity{}, fmt.Errorf("store: credentials: %w", err)
	}
	u, err := s.Unit(ctx, unit)
	return u.Identity, err
}

func (s *sqlStore) RegisterSerial(ctx context.Context, serial, hwKey string) error {
	if !identity.SerialOK(serial) {
		return fmt.Errorf("store: serial %q: want 1 to 64 of A-Z a-z 0-9 . _ -", serial)
	}
	return s.tx1(ctx, func(tx *sql.Tx) error {
		var n int
		if err := s.row(ctx, tx, `SELECT COUNT(*) FROM units WHERE serial = ?`, serial).Scan(&n); err != nil {
			return fmt.Errorf("store: scan: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w: serial %s belongs to a unit", ErrDuplicate, serial)
		}
		_, err := s.exec(ctx, tx, `INSERT INTO scanned_serials (serial, hw_key, scanned) VALUES (?, ?, ?)`, serial, hwKey, nanos(time.Now()))
		if s.d.isUnique(err) {
			return fmt.Errorf("%w: serial %s was scanned before", ErrDuplicate, serial)
		}
		if err != nil {
			return fmt.Errorf("store: scan: %w", err)
		}
		return nil
	})
}

func (s *sqlStore) addEvents(ctx context.Context, q querier, run int64, events []Event) error {
	for _, e := range events {
		if _, err := s.exec(ctx, q, `INSERT INTO events (run_id, seq, kind, time, body) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, seq) DO NOTHING`, run, e.Seq, e.Kind, nanos(e.Time), string(e.Body)); err != nil {
			return fmt.Errorf("store: event %d of run %d: %w", e.Seq, run, err)
		}
	}
	return nil
}

func (s *sqlStore) AddEvents(ctx context.Context, run int64, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	defer s.d.relaxBefore(ctx, s.db)()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.d.relaxInTx(ctx, tx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := s.exists(ctx, tx, run); err != nil {
			return err
		}
		return s.addEvents(ctx, tx, run, events)
	})
}

func (s *sqlStore) exists(ctx context.Context, q querier, run int64) error {
	var n int
	if err := s.row(ctx, q, `SELECT COUNT(*) FROM runs WHERE id = ?`, run).Scan(&n); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: run %d", ErrNotFound, run)
	}
	return nil
}

func (s *sqlStore) Finish(ctx context.Context, run int64, res Result) (Run, bool, error) {
	var dup bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var finished sql.NullInt64
		if err := s.row(ctx, tx, `SELECT finished FROM runs WHERE id = ?`+s.d.forUpdate(), run).Scan(&finished); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: run %d", ErrNotFound, run)
			}
			return fmt.Errorf("store: finish: %w", err)
		}
		if dup = finished.Valid; dup {
			return nil
		}
		if err := s.addEvents(ctx, tx, run, res.Events); err != nil {
			return err
		}
		steps, err := json.Marshal(res.Steps)
		if err != nil {
			return err
		}
		result := ResultFail
		if res.Pass {
			result = ResultPass
		}
		_, err = s.exec(ctx, tx, `UPDATE runs SET finished = ?, result = ?, reason = ?, read_back = ?, steps = ?, seconds = ? WHERE id = ?`,
			nanos(res.Time), result, res.Reason, res.ReadBack, string(steps), res.Seconds, run)
		if err != nil {
			return fmt.Errorf("store: finish: %w", err)
		}
		return nil
	})
	if err != nil {
		return Run{}, false, err
	}
	r, err := s.Run(ctx, run)
	return r, dup, err
}

const runColumns = `r.id, r.unit_id, r.attempt, r.station, u.board, u.revision, u.hw_key, u.serial, r.bundle, r.product, r.version,
	r.started, r.finished, r.result, r.reason, r.read_back, r.steps, r.seconds`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var serial sql.NullString
	var started int64
	var finished sql.NullInt64
	var steps string
	err := sc.Scan(&r.ID, &r.Unit, &r.Attempt, &r.Station, &r.Board, &r.Revision, &r.HWKey, &serial, &r.Bundle, &r.Product, &r.Version,
		&started, &finished, &r.Result, &r.Reason, &r.ReadBack, &steps, &r.Seconds)
	if err != nil {
		return r, err
	}
	r.Serial = serial.String
	r.Started = time.Unix(0, started)
	r.Finished = fromNanos(finished)
	if steps != "" {
		if err := json.Unmarshal([]byte(steps), &r.Steps); err != nil {
			return r, fmt.Errorf("store: run %d steps: %w", r.ID, err)
		}
	}
	return r, nil
}

func (s *sqlStore) Run(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(s.row(ctx, s.db, `SELECT `+runColumns+` FROM runs r JOIN units u ON u.id = r.unit_id WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: run %d", ErrNotFound, id)
	}
	if err != nil {
		return r, fmt.Errorf("store: run %d: %w", id, err)
	}
	return r, nil
}

func (s *sqlStore) Runs(ctx context.Context, limit int) ([]Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs r JOIN units u ON u.id = r.unit_id ORDER BY r.id DESC`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q))
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqlStore) Events(ctx context.Context, run int64) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT seq, kind, time, body FROM events WHERE run_id = ? ORDER BY seq`), run)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var t int64
		var body string
		if err := rows.Scan(&e.Seq, &e.Kind, &t, &body); err != nil {
			return nil, fmt.Errorf("store: events: %w", err)
		}
		e.Time, e.Body = time.Unix(0, t), []byte(body)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *sqlStore) Unit(ctx context.Context, id int64) (Unit, error) {
	var u Unit
	var serial, cert, key sql.NullString
	var created int64
	err := s.row(ctx, s.db, `SELECT id, hw_key, board, revision, emmc_cid, cpu_serial, mac, serial, certificate, private_key, created
		FROM units WHERE id = ?`, id).Scan(&u.ID, &u.HWKey, &u.Board, &u.Revision, &u.Hardware.EMMCCID, &u.Hardware.CPUSerial,
		&u.Hardware.MAC, &serial, &cert, &key, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%w: unit %d", ErrNotFound, id)
	}
	if err != nil {
		return u, fmt.Errorf("store: unit %d: %w", id, err)
	}
	u.Created = time.Unix(0, created)
	u.Identity = identity.Identity{Serial: serial.String, Certificate: cert.String, PrivateKey: key.String}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT mac FROM unit_macs WHERE unit_id = ? ORDER BY idx`), id)
	if err != nil {
		return u, fmt.Errorf("store: unit %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return u, err
		}
		u.Identity.MACs = append(u.Identity.MACs, m)
	}
	return u, rows.Err()
}

func (s *sqlStore) Summary(ctx context.Context, now time.Time) (Summary, error) {
	var sum Summary
	hourAgo := now.Add(-time.Hour)
	var first sql.NullInt64
	err := s.row(ctx, s.db, `SELECT
		COALESCE(SUM(CASE WHEN finished IS NULL THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN result = 'pass' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN result = 'fail' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN finished >= ? THEN 1 ELSE 0 END), 0),
		MIN(started) FROM runs`, nanos(hourAgo)).Scan(&sum.InProgress, &sum.Passed, &sum.Failed, &sum.FinishedLastHour, &first)
	if err != nil {
		return sum, fmt.Errorf("store: summary: %w", err)
	}
	sum.Since = hourAgo
	if f := fromNanos(first); f.After(hourAgo) {
		sum.Since = f
	}
	return sum, nil
}

// rebindDollar turns ? into $1, $2, ...: the queries here hold no ? in
// string literals.
func rebindDollar(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
