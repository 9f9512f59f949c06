package opamp_test

import (
	"errors"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward/opamp"
)

func TestWSEncoding(t *testing.T) {
	in := &protobufs.AgentToServer{InstanceUid: make([]byte, 16), SequenceNum: 7, Capabilities: 3}
	b, err := opamp.AppendWS(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 {
		t.Fatalf("header byte %d, want 0", b[0])
	}
	var out protobufs.AgentToServer
	if err := opamp.DecodeWS(b, &out); err != nil || !proto.Equal(in, &out) {
		t.Fatalf("round trip: %v %v", &out, err)
	}
	// An empty message is valid: just the header.
	if err := opamp.DecodeWS([]byte{0}, &out); err != nil {
		t.Fatalf("empty message: %v", err)
	}
	for name, bad := range map[string][]byte{
		"no header":      nil,
		"header 1":       {1, 0x08, 0x01},
		"unended varint": {0x80},
		"header 128":     {0x80, 0x01},
	} {
		if err := opamp.DecodeWS(bad, &out); !errors.Is(err, opamp.ErrHeader) {
			t.Errorf("%s: %v, want ErrHeader", name, err)
		}
	}
	if err := opamp.DecodeWS([]byte{0, 0x0a, 0x05, 0x01}, &out); err == nil || errors.Is(err, opamp.ErrHeader) {
		t.Fatalf("truncated protobuf: %v", err)
	}
}

func FuzzDecodeWS(f *testing.F) {
	b, _ := opamp.AppendWS(nil, &protobufs.AgentToServer{SequenceNum: 1, AgentDescription: &protobufs.AgentDescription{}})
	f.Add(b)
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m protobufs.AgentToServer
		if err := opamp.DecodeWS(data, &m); err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same message.
		again, err := opamp.AppendWS(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		var m2 protobufs.AgentToServer
		if err := opamp.DecodeWS(again, &m2); err != nil || !proto.Equal(&m, &m2) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
