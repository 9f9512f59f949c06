package steward

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
)

// Hash is a content hash (a config, package, connection settings or
// component hash). It is written as lower-case hex in JSON — the one format
// the API, the CLI and the UI show — and read from hex or, for documents
// written before hashes were hex, from base64.
type Hash []byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h) }

// Short returns the first 12 hex digits, for tables.
func (h Hash) Short() string {
	s := h.String()
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// MarshalJSON writes the hash as a hex string ("" for an empty hash).
// Hex digits need no escaping: the quoted string is built directly, not
// through json.Marshal (every stored agent state holds several hashes).
func (h Hash) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2*len(h)+2)
	b = append(b, '"')
	b = hex.AppendEncode(b, h)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a hex string, or a standard base64 string (the
// format of earlier stored documents); null and "" give an empty hash.
// EINVALID for anything else.
func (h *Hash) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	s, ok := plainString(b)
	if !ok {
		if err := json.Unmarshal(b, &s); err != nil {
			return Errorf(EINVALID, "a hash must be a hex string: %v", err)
		}
	}
	v, err := ParseHash(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// plainString returns the content of a JSON string literal that needs no
// unescaping (every hash Steward writes): six of them are read with each
// stored agent, and a nested json.Unmarshal for each cost a fifth of the
// agent's decoding.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	for _, c := range b[1 : len(b)-1] {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false
		}
	}
	return string(b[1 : len(b)-1]), true
}

// ParseHash reads a hex hash, or a base64 one (see Hash.UnmarshalJSON).
// Hex wins when a string is both (an even number of hex digits).
func ParseHash(s string) (Hash, error) {
	if s == "" {
		return nil, nil
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, Errorf(EINVALID, "invalid hash %q: want hex", s)
}
