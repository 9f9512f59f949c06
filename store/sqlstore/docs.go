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
	var out []*T
	err := db.each(ctx, query, args, docsInto(db, what, &out))
	if err != nil {
		return nil, db.wrap(err, "list %ss", what)
	}
	return out, nil
}

// listDocsPrepared is listDocs with the statement prepared once (see
// DB.prepared): for a fixed query run per agent connect.
func listDocsPrepared[T any](ctx context.Context, db *DB, what string, query string, args ...any) ([]*T, error) {
	var out []*T
	err := db.eachPrepared(ctx, query, args, docsInto(db, what, &out))
	if err != nil {
		return nil, db.wrap(err, "list %ss", what)
	}
	return out, nil
}

// docsInto returns a row function that appends each row's document to out.
func docsInto[T any](db *DB, what string, out *[]*T) func(*sql.Rows) error {
	return func(rows *sql.Rows) error {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		v, err := decodeDoc[T](db, "a "+what+" row", doc)
		*out = append(*out, v)
		return err
	}
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
