package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// Config bodies are stored once per content hash (steward.ConfigMap.Hash)
// in config_bodies: a config version references its files by configs.hash,
// an agent its effective config by agents.effective_hash. 18,000 agents
// running one 256 KiB config store it once, and an agent write that
// references a stored body does not send it again. An agent's available
// components are stored the same way (agents.components_hash; their hash
// is record.EncodeComponents's, never a config's).
//
// A body is pruned (PruneConfigBodies) once nothing references it and its
// used_at is older than the cut-off the caller gives (at least bodyReuse
// ago). Every write that references a body raises used_at when it is
// older than bodyReuse, in the same transaction as the reference; this
// process also remembers for bodyReuse which bodies it saw stored. So a
// prune never removes a body that a write running at the same time (on
// any replica) references, as long as the cut-off is more than bodyReuse
// plus the longest write transaction and the replicas' clock skew in the
// past.
const bodyReuse = time.Minute

// MinBodyAge is the youngest used_at PruneConfigBodies removes: more than
// bodyReuse plus the longest agent write (the group commit's 30 s bound)
// plus three and a half minutes of clock skew between replicas. It bounds
// what an agent whose effective config changes with every report (a
// volatile value in a collector's config, or a hostile agent) leaves
// behind: the bodies it reported in the last MinBodyAge, not the last
// hour's.
const MinBodyAge = 5 * time.Minute

// bodies caches decoded bodies by hash, bounded by their encoded size, and
// when this process last saw each stored.
type bodies struct {
	mu      sync.Mutex
	decoded map[string]*cachedBody
	size    int
	stored  map[string]time.Time
}

// cachedBody is a decoded body: a config's files or a component set.
type cachedBody struct {
	files      steward.ConfigMap
	components *steward.ComponentDetails
	size       int
}

// maxCachedBodies bounds the encoded size of the decoded bodies kept.
const maxCachedBodies = 32 << 20

func (b *bodies) get(hash []byte) (*cachedBody, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.decoded[string(hash)]
	return c, ok
}

func (b *bodies) put(hash []byte, c *cachedBody) {
	if c.size > maxCachedBodies/4 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.decoded == nil {
		b.decoded = make(map[string]*cachedBody)
	}
	if _, ok := b.decoded[string(hash)]; ok {
		return
	}
	for k, old := range b.decoded { // evict arbitrary entries until it fits
		if b.size+c.size <= maxCachedBodies {
			break
		}
		delete(b.decoded, k)
		b.size -= old.size
	}
	b.decoded[string(hash)] = c
	b.size += c.size
}

// fresh reports whether this process saw hash stored less than bodyReuse
// before now.
func (b *bodies) fresh(hash []byte, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.stored[string(hash)]
	return ok && now.Sub(at) < bodyReuse
}

// sawStored notes hashes as stored at now (after their transaction
// committed) and forgets stale notes.
func (b *bodies) sawStored(hashes [][]byte, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stored == nil {
		b.stored = make(map[string]time.Time)
	}
	for k, at := range b.stored {
		if now.Sub(at) >= bodyReuse {
			delete(b.stored, k)
		}
	}
	for _, h := range hashes {
		b.stored[string(h)] = now
	}
}

// body is what storeBodies stores under a hash: a config's files or an
// agent's available components, encoded only when they must be sent.
type body struct {
	files      steward.ConfigMap
	components *steward.ComponentDetails
	enc        []byte // the stored form, when already made
}

func (b body) encode() ([]byte, error) {
	if b.enc != nil {
		return b.enc, nil
	}
	if b.components != nil {
		enc, _, err := record.EncodeComponents(b.components)
		return enc, err
	}
	return record.EncodeFiles("", b.files)
}

// storeBodies makes sure every body in want (by hash) is stored and
// marked used, inside tx, and returns the hashes it looked at (to pass to
// sawStored once tx commits). A body is sent only when it is missing.
func (db *DB) storeBodies(ctx context.Context, tx *Tx, want map[string]body, now time.Time) ([][]byte, error) {
	var seen [][]byte
	for k, b := range want {
		hash := []byte(k)
		if db.bodies.fresh(hash, now) {
			continue
		}
		var used timeCol
		err := tx.QueryRow(ctx, `SELECT used_at FROM config_bodies WHERE hash = ?`, hash).Scan(&used)
		switch {
		case err == sql.ErrNoRows:
			enc, err := b.encode()
			if err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO config_bodies (hash, files, used_at) VALUES (?, ?, ?)
				ON CONFLICT (hash) DO UPDATE SET used_at = excluded.used_at`, hash, enc, db.time(now)); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		case now.Sub(used.Time) >= bodyReuse:
			if _, err := tx.Exec(ctx, `UPDATE config_bodies SET used_at = ? WHERE hash = ?`, db.time(now), hash); err != nil {
				return nil, err
			}
		}
		seen = append(seen, hash)
	}
	return seen, nil
}

// loadBodies returns the decoded body of each hash, from the cache or the
// read pool (decode makes a cached body of what is stored); EINTERNAL
// when a referenced body is missing or corrupt.
func (db *DB) loadBodies(ctx context.Context, hashes [][]byte, decode func(hash, enc []byte) (*cachedBody, error)) (map[string]*cachedBody, error) {
	out := make(map[string]*cachedBody, 1)
	for _, h := range hashes {
		if h == nil {
			continue
		}
		if _, ok := out[string(h)]; ok {
			continue
		}
		if c, ok := db.bodies.get(h); ok {
			out[string(h)] = c
			continue
		}
		var enc []byte
		if err := db.queryRow(ctx, `SELECT files FROM config_bodies WHERE hash = ?`, h).Scan(&enc); err == sql.ErrNoRows {
			return nil, steward.Errorf(steward.EINTERNAL, "config body %x is missing", h)
		} else if err != nil {
			return nil, db.wrap(err, "read config body %x", h)
		}
		c, err := decode(h, enc)
		if err != nil {
			return nil, err
		}
		db.bodies.put(h, c)
		out[string(h)] = c
	}
	return out, nil
}

func decodeFiles(h, enc []byte) (*cachedBody, error) {
	var files steward.ConfigMap
	if err := json.Unmarshal(enc, &files); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "config body %x is corrupt: %v", h, err)
	}
	return &cachedBody{files: files, size: len(enc)}, nil
}

func decodeComponents(h, enc []byte) (*cachedBody, error) {
	c, err := record.DecodeComponents(h, enc)
	if err != nil {
		return nil, err
	}
	return &cachedBody{components: c, size: len(enc)}, nil
}

// bodyRefs are the hashes of what an agent row stores apart (nil: not
// stored apart).
type bodyRefs struct{ effective, components []byte }

// withBodies sets the effective config and the available components of
// each agent whose row references them (refs[i] for agents[i]). Agents
// that share a body share its decoded value: callers replace an agent's
// EffectiveConfig or AvailableComponents, never modify them.
func (db *DB) withBodies(ctx context.Context, agents []*steward.Agent, refs []bodyRefs) error {
	var effective, components [][]byte
	for _, r := range refs {
		effective, components = append(effective, r.effective), append(components, r.components)
	}
	files, err := db.loadBodies(ctx, effective, decodeFiles)
	if err != nil {
		return err
	}
	sets, err := db.loadBodies(ctx, components, decodeComponents)
	if err != nil {
		return err
	}
	for i, r := range refs {
		if r.effective != nil {
			m := files[string(r.effective)].files
			agents[i].EffectiveConfig = &m
		}
		if r.components != nil {
			c := sets[string(r.components)].components
			agents[i].AvailableComponents = c
			db.sets.decoded(c, r.components)
		}
	}
	return nil
}

// PruneConfigBodies deletes the config bodies no config version and no
// agent references whose last use was before before (at most MinBodyAge
// ago: a later time is taken as that) and returns how many went.
func (db *DB) PruneConfigBodies(ctx context.Context, before time.Time) (int, error) {
	if limit := db.now().Add(-MinBodyAge); before.After(limit) {
		before = limit
	}
	res, err := db.exec(ctx, `DELETE FROM config_bodies WHERE used_at < ?
		AND NOT EXISTS (SELECT 1 FROM configs c WHERE c.hash = config_bodies.hash)
		AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.effective_hash = config_bodies.hash)
		AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.components_hash = config_bodies.hash)`, db.time(before))
	if err != nil {
		return 0, db.wrap(err, "prune config bodies")
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// moveEffectiveConfigs is the Go step of migration 10: it moves the
// effective configs agent documents carried inline into config_bodies.
// It runs in the migration's transaction, a page of agents at a time.
func moveEffectiveConfigs(ctx context.Context, db *DB, tx *sql.Tx) error {
	return eachAgentDoc(ctx, db, tx, func(id string, doc []byte) error {
		doc, hash, files, err := record.SplitEffectiveConfig(doc)
		if err != nil || hash == nil {
			return err
		}
		enc, err := record.EncodeFiles("", files)
		if err != nil {
			return err
		}
		return moveBody(ctx, db, tx, id, doc, "effective_hash", hash, enc)
	})
}

// moveComponents is the Go step of migration 18: it moves the available
// components agent documents carried inline into config_bodies.
func moveComponents(ctx context.Context, db *DB, tx *sql.Tx) error {
	return eachAgentDoc(ctx, db, tx, func(id string, doc []byte) error {
		doc, enc, hash, err := record.SplitComponents(doc)
		if err != nil || hash == nil {
			return err
		}
		return moveBody(ctx, db, tx, id, doc, "components_hash", hash, enc)
	})
}

// moveBody stores enc under hash and rewrites agent id's document as doc,
// referencing the body by column.
func moveBody(ctx context.Context, db *DB, tx *sql.Tx, id string, doc []byte, column string, hash, enc []byte) error {
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO config_bodies (hash, files, used_at) VALUES (?, ?, ?)
		ON CONFLICT (hash) DO NOTHING`), hash, enc, db.time(db.nowT())); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, db.q(`UPDATE agents SET doc = ?, `+column+` = ? WHERE id = ?`), doc, hash, id)
	return err
}

// eachAgentDoc calls fn with the id and document of every stored agent,
// reading a page of agents at a time in tx; an error of fn names the
// agent.
func eachAgentDoc(ctx context.Context, db *DB, tx *sql.Tx, fn func(id string, doc []byte) error) error {
	after := ""
	for {
		type row struct {
			id  string
			doc []byte
		}
		var page []row
		rows, err := tx.QueryContext(ctx, db.q(`SELECT id, doc FROM agents WHERE id > ? ORDER BY id LIMIT 500`), after)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.doc); err != nil {
				rows.Close()
				return err
			}
			page = append(page, r)
		}
		if err := rowsDone(rows); err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, r := range page {
			if err := fn(r.id, r.doc); err != nil {
				return steward.Errorf(steward.EINTERNAL, "stored agent %s: %v", r.id, err)
			}
		}
		after = page[len(page)-1].id
	}
}

// rowsDone closes rows and returns the error that ended them.
func rowsDone(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// contentHashes remembers the content hash (steward.ConfigMap.Hash) of the
// effective configs written lately, found by a fast non-cryptographic hash
// of the content and confirmed byte for byte. When a fleet applies one
// config, every agent's write carries the same body: at 256 KiB its
// SHA-256 was the largest CPU cost of a write, a comparison is a small
// fraction of it.
type contentHashes struct {
	mu     sync.Mutex
	seed   maphash.Seed
	recent map[uint64]hashedConfig
	size   int
}

type hashedConfig struct {
	files steward.ConfigMap
	hash  []byte
}

// maxHashedConfigs bounds the configs contentHashes keeps (by count and by
// size of their bodies).
const (
	maxHashedConfigs    = 16
	maxHashedConfigSize = 16 << 20
)

// hash returns files.Hash().
func (c *contentHashes) hash(files steward.ConfigMap) []byte {
	names := slices.Sorted(maps.Keys(files))
	c.mu.Lock()
	if c.recent == nil {
		c.seed = maphash.MakeSeed()
		c.recent = make(map[uint64]hashedConfig)
	}
	seed := c.seed
	c.mu.Unlock()
	var h maphash.Hash
	h.SetSeed(seed)
	size := 0
	for _, n := range names {
		f := files[n]
		h.WriteString(n)
		h.WriteByte(0)
		h.WriteString(f.ContentType)
		h.WriteByte(0)
		h.Write(f.Body)
		h.WriteByte(0)
		size += len(f.Body)
	}
	key := h.Sum64()
	c.mu.Lock()
	known, ok := c.recent[key]
	c.mu.Unlock()
	if ok && sameFiles(known.files, files) {
		return known.hash
	}
	sum := files.Hash()
	if size > maxHashedConfigSize/4 {
		return sum
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recent) >= maxHashedConfigs || c.size+size > maxHashedConfigSize {
		clear(c.recent)
		c.size = 0
	}
	if old, ok := c.recent[key]; ok {
		c.size -= configSize(old.files)
	}
	// A copy: a caller changing its map later cannot make it lie.
	own := make(steward.ConfigMap, len(files))
	for n, f := range files {
		own[n] = steward.ConfigFile{Body: bytes.Clone(f.Body), ContentType: f.ContentType}
	}
	c.recent[key] = hashedConfig{files: own, hash: sum}
	c.size += size
	return sum
}

// sameFiles reports whether a and b hold the same files, byte for byte.
func sameFiles(a, b steward.ConfigMap) bool {
	if len(a) != len(b) {
		return false
	}
	for n, f := range a {
		g, ok := b[n]
		if !ok || f.ContentType != g.ContentType || !bytes.Equal(f.Body, g.Body) {
			return false
		}
	}
	return true
}

func configSize(files steward.ConfigMap) int {
	n := 0
	for _, f := range files {
		n += len(f.Body)
	}
	return n
}
