package record

import (
	"crypto/sha256"
	"encoding/json"

	"github.com/stewardhq/steward"
)

// An agent's available components are stored apart from its document,
// once per content (config_bodies, like config files): a collector
// distribution reports the same few hundred components from every agent
// that runs it, about 35 KB of JSON that each agent read and each whole
// write would otherwise decode or encode again.

// componentsDomain prefixes what a component set's hash covers, so that
// it never equals a config's hash (steward.ConfigMap.Hash) in the table
// both share.
const componentsDomain = "steward available components\n"

// EncodeComponents returns the stored form of c and its content hash.
func EncodeComponents(c *steward.ComponentDetails) (enc, hash []byte, err error) {
	enc, err = json.Marshal(componentsToDoc(c))
	if err != nil {
		return nil, nil, steward.Errorf(steward.EINVALID, "available components cannot be stored: %v", err)
	}
	return enc, componentsHash(enc), nil
}

func componentsHash(enc []byte) []byte {
	h := sha256.New()
	h.Write([]byte(componentsDomain))
	h.Write(enc)
	return h.Sum(nil)
}

// DecodeComponents decodes what EncodeComponents wrote; EINTERNAL naming
// the hash when it does not decode.
func DecodeComponents(hash, enc []byte) (*steward.ComponentDetails, error) {
	var d componentsDoc
	if err := json.Unmarshal(enc, &d); err != nil {
		return nil, steward.Errorf(steward.EINTERNAL, "stored available components %x are corrupt: %v", hash, err)
	}
	return componentsFromDoc(&d), nil
}

// SplitComponents takes the available components out of an agent document
// written before they were stored apart (migration 18): it returns the
// document without them, and their stored form and hash (nil when the
// document has none).
func SplitComponents(doc []byte) (rest, enc, hash []byte, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, nil, nil, err
	}
	raw, ok := m["available_components"]
	if !ok || string(raw) == "null" {
		return doc, nil, nil, nil
	}
	var d componentsDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, nil, nil, err
	}
	// Encoded again, not kept as found: PostgreSQL's jsonb renders the
	// same components with other spacing and key order, which must not
	// make another hash.
	if enc, err = json.Marshal(&d); err != nil {
		return nil, nil, nil, err
	}
	delete(m, "available_components")
	if rest, err = json.Marshal(m); err != nil {
		return nil, nil, nil, err
	}
	return rest, enc, componentsHash(enc), nil
}
