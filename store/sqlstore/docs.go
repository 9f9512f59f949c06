package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/stewardhq/steward"
)

// Many records are stored as a JSON document next to the columns they are
// looked up and ordered by; these helpers read them.

// getDoc reads the one document query returns into a T; ENOTFOUND naming
// what when there is no row, EINTERNAL when the document does not decode.
func getDoc[T any](ctx context.Context, db *DB, what string, query string, args ...any) (*T, error) {
	var doc []byte
	if err := db.queryRow(ctx, query, args...).Scan(&doc); err != nil {
		return nil, db.notFound(err, "%s", what)
	}
	return decodeDoc[T](db, what, doc)
}

// listDocs reads every document query returns, in order.
func listDocs[T any](ctx context.Context, db *DB, what string, query string, args ...any) ([]*T, error) {
	return readDocs[T](db, what, func(fn func(*sql.Rows) error) error { return db.each(ctx, query, args, fn) })
}

// listDocsPrepared is listDocs with the statement prepared once (see
// DB.prepared): for a fixed query run per agent connect.
func listDocsPrepared[T any](ctx context.Context, db *DB, what string, query string, args ...any) ([]*T, error) {
	return readDocs[T](db, what, func(fn func(*sql.Rows) error) error { return db.eachPrepared(ctx, query, args, fn) })
}

// readDocs decodes the document of every row each walks.
func readDocs[T any](db *DB, what string, each func(func(*sql.Rows) error) error) ([]*T, error) {
	var out []*T
	err := each(func(rows *sql.Rows) error {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		v, err := decodeDoc[T](db, "a "+what+" row", doc)
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, db.wrap(err, "list %ss", what)
	}
	return out, nil
}

func decodeDoc[T any](db *DB, what string, doc []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "%s: %s is corrupt: %v", db.d.Name, what, err)
	}
	return &v, nil
}

// encodeDoc encodes v as a document; EINVALID naming what when JSON cannot
// carry it.
func encodeDoc(db *DB, what string, v any) ([]byte, error) {
	doc, err := json.Marshal(v)
	if err != nil {
		return nil, steward.Errorf(steward.EINVALID, "%s: encode %s: %v", db.d.Name, what, err)
	}
	return doc, nil
}
