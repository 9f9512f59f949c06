package sqlstore

import (
	"hash/maphash"
	"reflect"
	"sync"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/internal/record"
)

// componentSets finds the hash of a component set without encoding it
// (about 0.5 ms for a contrib collector's 225 components, then SHA-256)
// when it was lately read or written:
//   - by pointer, for a set the store decoded (withBodies): an agent read
//     from the store and written back whole carries that same value
//     (shared, never modified in place);
//   - by content, for a set an agent reported: every agent of a
//     distribution reports an equal one, each its own copy. A fast
//     non-cryptographic hash of the content finds a candidate, a
//     comparison with the store's own decoded copy confirms it.
type componentSets struct {
	mu      sync.Mutex
	seed    maphash.Seed
	byPtr   map[*steward.ComponentDetails][]byte
	byValue map[uint64]knownSet
}

type knownSet struct {
	set  *steward.ComponentDetails // decoded from enc: nobody else holds it
	hash []byte
}

// maxKnownSets bounds each map: a fleet runs a few collector
// distributions and versions.
const maxKnownSets = 16

// decoded notes that the store decoded set from the body stored as hash.
func (c *componentSets) decoded(set *steward.ComponentDetails, hash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byPtr[set]; ok {
		return
	}
	if c.byPtr == nil || len(c.byPtr) >= maxKnownSets {
		c.byPtr = make(map[*steward.ComponentDetails][]byte)
	}
	c.byPtr[set] = hash
}

// encode returns the stored form of set (nil when a set of equal content
// is known, so stored or about to be) and its hash.
func (c *componentSets) encode(set *steward.ComponentDetails) (enc, hash []byte, err error) {
	c.mu.Lock()
	if c.byValue == nil {
		c.seed = maphash.MakeSeed()
		c.byValue = make(map[uint64]knownSet)
	}
	hash, ok := c.byPtr[set]
	seed := c.seed
	c.mu.Unlock()
	if ok {
		return nil, hash, nil
	}
	key := setKey(seed, set)
	c.mu.Lock()
	known, ok := c.byValue[key]
	c.mu.Unlock()
	if ok && sameSet(known.set, set) {
		return nil, known.hash, nil
	}
	if enc, hash, err = record.EncodeComponents(set); err != nil {
		return nil, nil, err
	}
	own, err := record.DecodeComponents(hash, enc)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byValue) >= maxKnownSets {
		clear(c.byValue)
	}
	c.byValue[key] = knownSet{set: own, hash: hash}
	return enc, hash, nil
}

// setKey hashes the content of d: its hash, metadata keys and the names
// of its components, recursively. Component names are combined in any
// order (a map's), so nothing is sorted; metadata values are left to
// sameSet.
func setKey(seed maphash.Seed, d *steward.ComponentDetails) uint64 {
	if d == nil {
		return 0
	}
	var h maphash.Hash
	h.SetSeed(seed)
	h.Write(d.Hash)
	for _, kv := range d.Metadata {
		h.WriteByte(0)
		h.WriteString(kv.Key)
	}
	var sum uint64
	for name, sub := range d.Components {
		sum += maphash.String(seed, name) ^ setKey(seed, sub)
	}
	h.WriteByte(1)
	maphash.WriteComparable(&h, sum)
	return h.Sum64()
}

// sameSet reports whether a and b hold the same content, as stored.
func sameSet(a, b *steward.ComponentDetails) bool {
	if a == nil || b == nil {
		return a == b
	}
	if string(a.Hash) != string(b.Hash) || len(a.Metadata) != len(b.Metadata) || len(a.Components) != len(b.Components) {
		return false
	}
	for i, kv := range a.Metadata {
		other := b.Metadata[i]
		if kv.Key != other.Key || !sameValue(kv.Value, other.Value) {
			return false
		}
	}
	for name, sub := range a.Components {
		other, ok := b.Components[name]
		if !ok || !sameSet(sub, other) {
			return false
		}
	}
	return true
}

// sameValue compares attribute values: strings (nearly all component
// metadata) directly, anything else by its stored form's Go value.
func sameValue(a, b any) bool {
	if x, ok := a.(string); ok {
		y, ok := b.(string)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}
