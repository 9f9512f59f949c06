package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"net/http"
	"testing"
)

func TestDeflateRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 70000, 1 << 20} {
		in := bytes.Repeat([]byte("opamp status "), n/13+1)[:n]
		c := AppendDeflate([]byte("prefix"), in)
		if string(c[:6]) != "prefix" {
			t.Fatal("prefix lost")
		}
		out, err := Inflate([]byte("x"), c[6:], int64(n)+1)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !bytes.Equal(out[1:], in) || out[0] != 'x' {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

func TestInflateLimitsAndErrors(t *testing.T) {
	bomb := AppendDeflate(nil, make([]byte, 8<<20)) // 8 MiB of zeros
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	if _, err := Inflate(nil, bomb, 1<<20); !errors.Is(err, ErrMessageTooBig) {
		t.Fatalf("bomb: %v", err)
	}
	if _, err := Inflate(nil, []byte{0xff, 0xfe, 0xfd, 0x00, 0x13}, 1<<20); !errors.Is(err, ErrInvalidDeflate) {
		t.Fatalf("garbage: %v", err)
	}
	// A compressor other than ours (default level, sync flush) inflates.
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	fw.Write([]byte("hello hello hello"))
	fw.Flush()
	out, err := Inflate(nil, bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff}), 100)
	if err != nil || string(out) != "hello hello hello" {
		t.Fatalf("foreign stream: %q %v", out, err)
	}
}

func TestNegotiateDeflate(t *testing.T) {
	for offer, want := range map[string]bool{
		"":                       false,
		"x-webkit-deflate-frame": false,
		"permessage-deflate":     true,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover": true,
		"permessage-deflate; client_max_window_bits":                                 true,
		"permessage-deflate; server_max_window_bits=10":                              false,
		"permessage-deflate; server_max_window_bits=10, permessage-deflate":          true,
		"permessage-deflate; unknown_param":                                          false,
	} {
		h := http.Header{}
		if offer != "" {
			h.Set("Sec-WebSocket-Extensions", offer)
		}
		got := NegotiateDeflate(h)
		if (got != "") != want {
			t.Errorf("%q: got %q", offer, got)
		}
	}
}

func TestParserCompressedFrames(t *testing.T) {
	key := [4]byte{5, 6, 7, 8}
	comp := AppendDeflate(nil, []byte("compressed text"))
	frame := AppendFrame(nil, true, Text, comp, true, key)
	frame[0] |= RSV1
	// Without Deflate negotiated, RSV1 is a protocol error.
	p := Parser{FromClient: true}
	if _, err := feedAll(t, &p, frame, 3); CloseCode(err) != CloseProtocolError {
		t.Fatalf("RSV1 without deflate: %v", err)
	}
	// With it, the message is emitted compressed; fragmented too.
	var frag []byte
	frag = append(frag, AppendFrame(nil, false, Binary, comp[:4], true, key)...)
	frag[0] |= RSV1
	frag = append(frag, AppendFrame(nil, true, Continuation, comp[4:], true, key)...)
	plain := AppendFrame(nil, true, Binary, []byte("plain"), true, key)
	for _, chunk := range []int{1, 5, 1000} {
		p = Parser{FromClient: true, Deflate: true}
		var got []string
		var flags []bool
		err := func() error {
			in := append(append(append([]byte(nil), frame...), frag...), plain...)
			for len(in) > 0 {
				n := min(chunk, len(in))
				if err := p.Feed(in[:n], func(op Opcode, b []byte) error {
					flags = append(flags, p.Compressed())
					if p.Compressed() {
						out, err := Inflate(nil, b, 100)
						if err != nil {
							return err
						}
						b = out
					}
					got = append(got, string(b))
					return nil
				}); err != nil {
					return err
				}
				in = in[n:]
			}
			return nil
		}()
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if len(got) != 3 || got[0] != "compressed text" || got[1] != "compressed text" || got[2] != "plain" ||
			!flags[0] || !flags[1] || flags[2] {
			t.Fatalf("chunk %d: got %q flags %v", chunk, got, flags)
		}
	}
	// RSV1 on a continuation or control frame, or RSV2, is an error.
	bad := [][]byte{
		append(AppendFrame(nil, false, Binary, []byte("a"), true, key), func() []byte {
			f := AppendFrame(nil, true, Continuation, []byte("b"), true, key)
			f[0] |= RSV1
			return f
		}()...),
		func() []byte { f := AppendFrame(nil, true, Ping, nil, true, key); f[0] |= RSV1; return f }(),
		func() []byte { f := AppendFrame(nil, true, Binary, nil, true, key); f[0] |= 0x20; return f }(),
	}
	for i, b := range bad {
		p = Parser{FromClient: true, Deflate: true}
		if _, err := feedAll(t, &p, b, 100); CloseCode(err) != CloseProtocolError {
			t.Fatalf("bad %d: %v", i, err)
		}
	}
}

// A compressed prefix made once, followed by a per-message part either
// compressed or stored, inflates to prefix+part.
func TestDeflatePrefixConcatenation(t *testing.T) {
	prefix := bytes.Repeat([]byte("shared remote config body "), 4000)
	z := AppendDeflatePrefix(nil, prefix)
	for _, part := range [][]byte{[]byte("uid-0123456789ab"), bytes.Repeat([]byte{7}, 70000), nil} {
		for name, appendPart := range map[string]func([]byte, []byte) []byte{"stored": AppendDeflateStored, "deflated": AppendDeflate} {
			msg := appendPart(append([]byte(nil), z...), part)
			got, err := Inflate(nil, msg, 1<<30)
			if err != nil {
				t.Fatalf("%s part of %d bytes: %v", name, len(part), err)
			}
			if want := append(append([]byte(nil), prefix...), part...); !bytes.Equal(got, want) {
				t.Fatalf("%s part of %d bytes: inflated %d bytes, want %d", name, len(part), len(got), len(want))
			}
		}
	}
}
