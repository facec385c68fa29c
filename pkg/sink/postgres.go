package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgSink writes batches into one table with an upsert per batch, in one
// transaction: a batch is in the table whole or not at all.
type pgSink struct {
	connString string // expanded: holds the password; never logged
	table      string // quoted identifier
	plain      string // the table as given, for messages
	pool       *pgxpool.Pool
	ready      bool // table checked
	redact     *redactor
}

func newPostgres(connString, table string, r *redactor) *pgSink {
	var parts []string
	for _, p := range strings.Split(table, ".") {
		parts = append(parts, p)
	}
	return &pgSink{connString: connString, table: pgx.Identifier(parts).Sanitize(), plain: table, redact: r}
}

// columns of the table, as DESIGN.md fixes them.
var pgColumns = []struct{ name, typ string }{
	{"id", "text"}, {"crawl", "text"}, {"spider", "text"}, {"url", "text"},
	{"depth", "integer"}, {"fetched_at", "timestamp with time zone"}, {"data", "jsonb"},
}

func (p *pgSink) connect(ctx context.Context) error {
	if p.pool != nil {
		return nil
	}
	cfg, err := pgxpool.ParseConfig(p.connString)
	if err != nil {
		// pgx's parse errors may quote the string: say only what is wrong.
		return Permanent(fmt.Errorf("postgres connection string does not parse (check --postgres)"))
	}
	cfg.MaxConns = 2
	cfg.MaxConnIdleTime = time.Minute
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "crawlmesh-sink"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	p.pool = pool
	return nil
}

// ensureTable creates the table if missing and checks the columns of an
// existing one, so a wrong table is reported by name, not as a failed
// insert.
func (p *pgSink) ensureTable(ctx context.Context) error {
	if p.ready {
		return nil
	}
	_, err := p.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+p.table+` (
	id text PRIMARY KEY,
	crawl text NOT NULL,
	spider text NOT NULL,
	url text NOT NULL,
	depth integer NOT NULL,
	fetched_at timestamptz NOT NULL,
	data jsonb NOT NULL)`)
	if err != nil {
		return err
	}
	rows, err := p.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
	FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`, p.table)
	if err != nil {
		return err
	}
	have := map[string]string{}
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			rows.Close()
			return err
		}
		have[n] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var wrong []string
	for _, c := range pgColumns {
		switch t, ok := have[c.name]; {
		case !ok:
			wrong = append(wrong, "no column "+c.name+" ("+c.typ+")")
		case t != c.typ:
			wrong = append(wrong, "column "+c.name+" is "+t+", want "+c.typ)
		}
	}
	if len(wrong) > 0 {
		return Permanent(fmt.Errorf("table %s exists with other columns: %s (drop or rename it, or give another --table)", p.plain, strings.Join(wrong, "; ")))
	}
	// Delivery upserts by item id: without a key on id alone PostgreSQL
	// answers only "no unique or exclusion constraint matching the ON
	// CONFLICT specification", naming neither the table nor the fix.
	var keyed bool
	err = p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
	WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = 'id')`, p.table).Scan(&keyed)
	if err != nil {
		return err
	}
	if !keyed {
		return Permanent(fmt.Errorf("table %s has no primary key or unique index on id alone, and delivery upserts by item id (ALTER TABLE %s ADD PRIMARY KEY (id))", p.plain, p.plain))
	}
	p.ready = true
	return nil
}

// Deliver upserts the batch in one transaction.
func (p *pgSink) Deliver(ctx context.Context, b Batch) error {
	err := p.deliver(ctx, b)
	if err == nil {
		return nil
	}
	if isConnErr(err) {
		p.ready = false // the database may have been recreated
	}
	return p.classify(err)
}

func (p *pgSink) deliver(ctx context.Context, b Batch) error {
	if err := p.connect(ctx); err != nil {
		return err
	}
	if err := p.ensureTable(ctx); err != nil {
		return err
	}
	n := len(b.Items)
	ids, crawls, spiders, urls := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	depths, fetched, data := make([]int32, n), make([]time.Time, n), make([]string, n)
	for i, it := range b.Items {
		ids[i], crawls[i], spiders[i], urls[i] = it.ID, it.Crawl, it.Spider, it.URL
		depths[i], fetched[i], data[i] = int32(it.Depth), it.FetchedAt, withoutNUL(it.Data)
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO `+p.table+` (id, crawl, spider, url, depth, fetched_at, data)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::jsonb[])
	ON CONFLICT (id) DO UPDATE SET crawl = EXCLUDED.crawl, spider = EXCLUDED.spider, url = EXCLUDED.url,
		depth = EXCLUDED.depth, fetched_at = EXCLUDED.fetched_at, data = EXCLUDED.data`,
			ids, crawls, spiders, urls, depths, fetched, data)
		return err
	})
}

// withoutNUL is the JSON text of an item with each escaped U+0000 as
// U+FFFD. PostgreSQL's jsonb (and text) cannot hold U+0000 and refuses
// the whole batch (22P05) however often it is retried, so one such item
// stopped the sink for good (found by review); the export keeps the NUL.
func withoutNUL(j json.RawMessage) string {
	s := string(j)
	if !strings.Contains(s, `\u0000`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		// Inside a JSON string a backslash always starts an escape, so
		// "\\u0000" (a backslash, then text) is left alone.
		if strings.HasPrefix(s[i:], `\u0000`) {
			b.WriteString(`\ufffd`)
			i += 5
			continue
		}
		b.WriteByte(s[i])
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

// classify marks what retrying cannot heal and redacts.
func (p *pgSink) classify(err error) error {
	msg := p.redact.String(err.Error())
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "42"), // undefined column or table, wrong type, no privilege
			strings.HasPrefix(pe.Code, "28"), // password or authorization refused
			pe.Code == "3D000",               // no such database
			pe.Code == "3F000":               // no such schema (--table SCHEMA.NAME)
			p.ready = false
			return Permanent(errors.New("postgres: " + msg))
		case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"): // bad data, constraint
			return Permanent(errors.New("postgres: " + msg))
		}
	}
	if IsPermanent(err) {
		return Permanent(errors.New(msg))
	}
	return errors.New("postgres: " + msg)
}

func isConnErr(err error) bool {
	var pe *pgconn.PgError
	return !errors.As(err, &pe)
}

func (p *pgSink) Close() {
	if p.pool != nil {
		p.pool.Close()
	}
}
