package postgres

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stewardhq/steward"
)

var _ steward.Broadcaster = (*DB)(nil)

// maxNotice is below PostgreSQL's 8000-byte NOTIFY payload limit.
const maxNotice = 7900

// Broadcast sends n to every replica listening on this database and schema
// (pg_notify; delivered after commit, best effort). EINVALID when the encoded
// notice exceeds the NOTIFY payload limit, EUNAVAILABLE when the database
// cannot be reached.
func (db *DB) Broadcast(ctx context.Context, n steward.Notice) error {
	b, err := json.Marshal(n)
	if err != nil {
		return steward.Errorf(steward.EINVALID, "postgres: encode notice: %v", err)
	}
	if len(b) > maxNotice {
		return steward.Errorf(steward.EINVALID, "postgres: notice of %d bytes exceeds the %d-byte limit", len(b), maxNotice)
	}
	_, err = db.SQL().ExecContext(ctx, "SELECT pg_notify($1, $2)", db.channel, string(b))
	return db.Wrap(err, "notify")
}

// Listen holds one connection in LISTEN and calls fn for every notice until
// ctx ends. A lost connection is re-established with backoff. Each time
// LISTEN takes effect (first and after a reconnect) fn gets a NoticeDesired
// with no origin, so the listener catches up on notices it missed.
func (db *DB) Listen(ctx context.Context, fn func(steward.Notice)) error {
	backoff := 100 * time.Millisecond
	for {
		err := db.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 10*time.Second {
			backoff *= 2
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, fn func(steward.Notice)) error {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return db.Wrap(err, "listen")
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		// A connection that was in LISTEN must not go back to the pool:
		// returning driver.ErrBadConn makes database/sql close it.
		if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{db.channel}.Sanitize()); err != nil {
			return errors.Join(driver.ErrBadConn, db.Wrap(err, "listen"))
		}
		// Notices sent before this LISTEN (at start, or while reconnecting)
		// were missed: tell the listener to catch up from the database.
		fn(steward.Notice{Kind: steward.NoticeDesired})
		for {
			nf, err := c.WaitForNotification(ctx)
			if err != nil {
				return errors.Join(driver.ErrBadConn, db.Wrap(err, "wait for notification"))
			}
			var n steward.Notice
			if err := json.Unmarshal([]byte(nf.Payload), &n); err != nil {
				continue // not ours, or garbled: ignore
			}
			fn(n)
		}
	})
	return err
}
