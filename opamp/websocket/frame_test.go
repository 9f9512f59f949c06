package websocket

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

type got struct {
	op   Opcode
	data string
}

// feedAll feeds b to p in chunks of the given sizes (cycled) and collects
// what it emits.
func feedAll(t *testing.T, p *Parser, b []byte, chunk int) ([]got, error) {
	t.Helper()
	var out []got
	emit := func(op Opcode, data []byte) error {
		out = append(out, got{op, string(data)})
		return nil
	}
	b = append([]byte(nil), b...)
	for len(b) > 0 {
		n := min(chunk, len(b))
		if err := p.Feed(b[:n], emit); err != nil {
			return out, err
		}
		b = b[n:]
	}
	return out, nil
}

func clientFrame(fin bool, op Opcode, payload string) []byte {
	return AppendFrame(nil, fin, op, []byte(payload), true, [4]byte{0x12, 0x34, 0x56, 0x78})
}

func TestMaskRoundTrip(t *testing.T) {
	for n := 0; n < 40; n++ {
		for pos := 0; pos < 4; pos++ {
			key := [4]byte{1, 2, 3, 250}
			orig := make([]byte, n)
			for i := range orig {
				orig[i] = byte(i * 7)
			}
			b := append([]byte(nil), orig...)
			end := maskBytes(key, pos, b)
			if end != (pos+n)&3 {
				t.Fatalf("n=%d pos=%d: end %d", n, pos, end)
			}
			for i := range b {
				if b[i] != orig[i]^key[(pos+i)&3] {
					t.Fatalf("n=%d pos=%d: byte %d wrong", n, pos, i)
				}
			}
			maskBytes(key, pos, b)
			if !bytes.Equal(b, orig) {
				t.Fatalf("n=%d pos=%d: not restored", n, pos)
			}
		}
	}
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'x'}, n)
		for _, masked := range []bool{false, true} {
			f := AppendFrame(nil, true, Binary, payload, masked, [4]byte{9, 8, 7, 6})
			p := Parser{FromClient: masked}
			for _, chunk := range []int{1, 3, 4096, len(f)} {
				p = Parser{FromClient: masked}
				out, err := feedAll(t, &p, f, chunk)
				if err != nil {
					t.Fatalf("n=%d masked=%v chunk=%d: %v", n, masked, chunk, err)
				}
				if len(out) != 1 || out[0].op != Binary || out[0].data != string(payload) {
					t.Fatalf("n=%d masked=%v chunk=%d: got %d messages", n, masked, chunk, len(out))
				}
				if !p.Idle() {
					t.Fatalf("parser not idle after a whole frame")
				}
			}
		}
	}
}

func TestFragmentationWithInterleavedControl(t *testing.T) {
	var b []byte
	b = append(b, clientFrame(false, Text, "Hel")...)
	b = append(b, clientFrame(true, Ping, "p1")...)
	b = append(b, clientFrame(false, Continuation, "lo, ")...)
	b = append(b, clientFrame(true, Pong, "")...)
	b = append(b, clientFrame(true, Continuation, "wörld")...)
	b = append(b, clientFrame(true, Binary, "\x00\x01")...)
	b = append(b, clientFrame(true, Close, "\x03\xe8bye")...)
	want := []got{{Ping, "p1"}, {Pong, ""}, {Text, "Hello, wörld"}, {Binary, "\x00\x01"}, {Close, "\x03\xe8bye"}}
	for chunk := 1; chunk <= len(b); chunk++ {
		p := Parser{FromClient: true}
		out, err := feedAll(t, &p, b, chunk)
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if len(out) != len(want) {
			t.Fatalf("chunk %d: got %v, want %v", chunk, out, want)
		}
		for i := range want {
			if out[i] != want[i] {
				t.Fatalf("chunk %d: message %d = %+v, want %+v", chunk, i, out[i], want[i])
			}
		}
		if !p.Idle() {
			t.Fatalf("chunk %d: parser not idle", chunk)
		}
	}
}

func TestParserErrors(t *testing.T) {
	big := bytes.Repeat([]byte{'a'}, 126)
	tests := []struct {
		name  string
		input []byte
		code  int
		max   int64
	}{
		{"unmasked from client", AppendFrame(nil, true, Binary, []byte("x"), false, [4]byte{}), CloseProtocolError, 0},
		{"rsv1", func() []byte { f := clientFrame(true, Binary, "x"); f[0] |= 0x40; return f }(), CloseProtocolError, 0},
		{"rsv3", func() []byte { f := clientFrame(true, Binary, "x"); f[0] |= 0x10; return f }(), CloseProtocolError, 0},
		{"opcode 3", clientFrame(true, Opcode(3), "x"), CloseProtocolError, 0},
		{"opcode 11", clientFrame(true, Opcode(11), "x"), CloseProtocolError, 0},
		{"ping too long", AppendFrame(nil, true, Ping, big, true, [4]byte{}), CloseProtocolError, 0},
		{"fragmented ping", clientFrame(false, Ping, "x"), CloseProtocolError, 0},
		{"lone continuation", clientFrame(true, Continuation, "x"), CloseProtocolError, 0},
		{"new message inside fragmented", append(clientFrame(false, Binary, "a"), clientFrame(true, Binary, "b")...), CloseProtocolError, 0},
		{"oversize single frame", clientFrame(true, Binary, "0123456789A"), CloseMessageTooBig, 10},
		{"oversize fragmented", append(clientFrame(false, Binary, "012345"), clientFrame(true, Continuation, "6789A")...), CloseMessageTooBig, 10},
		{"invalid utf8 text", clientFrame(true, Text, "\xff\xfe"), CloseInvalidPayload, 0},
		{"close 1 byte", clientFrame(true, Close, "\x03"), CloseProtocolError, 0},
		{"close code 1005", clientFrame(true, Close, "\x03\xed"), CloseProtocolError, 0},
		{"close code 999", clientFrame(true, Close, "\x03\xe7"), CloseProtocolError, 0},
		{"64-bit length msb", append([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, 1, 2, 3, 4), CloseProtocolError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 2, 1 << 20} {
				p := Parser{FromClient: true, MaxMessageSize: tt.max}
				_, err := feedAll(t, &p, tt.input, chunk)
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("chunk %d: err = %v, want a ProtocolError", chunk, err)
				}
				if pe.Code != tt.code {
					t.Fatalf("chunk %d: code %d (%v), want %d", chunk, pe.Code, err, tt.code)
				}
				if err2 := p.Feed(clientFrame(true, Binary, "ok"), func(Opcode, []byte) error { return nil }); err2 != err {
					t.Fatalf("failed parser accepted more input: %v", err2)
				}
			}
		})
	}
}

func TestMaskedFromServerRejected(t *testing.T) {
	p := Parser{}
	_, err := feedAll(t, &p, clientFrame(true, Binary, "x"), 100)
	if CloseCode(err) != CloseProtocolError {
		t.Fatalf("err = %v", err)
	}
}

func TestOversizeRejectedBeforeBuffering(t *testing.T) {
	// Only the header of a 1 GiB frame: the limit trips without the payload.
	hdr := []byte{0x82, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4}
	p := Parser{FromClient: true, MaxMessageSize: 1 << 20}
	if err := p.Feed(hdr, func(Opcode, []byte) error { return nil }); !errors.Is(err, ErrMessageTooBig) {
		t.Fatalf("err = %v, want ErrMessageTooBig", err)
	}
}

func TestParserRandomChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	var want []got
	for i := 0; i < 300; i++ {
		payload := randomBytes(r, r.IntN(3000))
		// Split into up to 4 fragments, a ping now and then between them.
		stream = appendFragmented(r, stream, payload, 1+r.IntN(4), func(stream []byte) []byte {
			if r.IntN(5) > 0 {
				return stream
			}
			want = append(want, got{Ping, "hb"})
			return AppendFrame(stream, true, Ping, []byte("hb"), true, [4]byte{9, 8, 7, 6})
		})
		want = append(want, got{Binary, string(payload)})
	}
	p := Parser{FromClient: true}
	var out []got
	emit := func(op Opcode, data []byte) error { out = append(out, got{op, string(data)}); return nil }
	for len(stream) > 0 {
		n := min(1+r.IntN(5000), len(stream))
		if err := p.Feed(stream[:n], emit); err != nil {
			t.Fatal(err)
		}
		stream = stream[n:]
	}
	if len(out) != len(want) {
		t.Fatalf("got %d messages, want %d", len(out), len(want))
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("message %d differs (op %v/%v, len %d/%d)", i, out[i].op, want[i].op, len(out[i].data), len(want[i].data))
		}
	}
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// appendFragmented appends payload to stream as a Binary message of parts
// client frames cut at random, each masked with a random key; between, when
// not nil, may append to the stream after every fragment but the last.
func appendFragmented(r *rand.Rand, stream, payload []byte, parts int, between func(stream []byte) []byte) []byte {
	rest := payload
	for k := range parts {
		cut := len(rest)
		if k < parts-1 {
			cut = r.IntN(len(rest) + 1)
		}
		op := Binary
		if k > 0 {
			op = Continuation
		}
		key := [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		stream = AppendFrame(stream, k == parts-1, op, rest[:cut], true, key)
		rest = rest[cut:]
		if k < parts-1 && between != nil {
			stream = between(stream)
		}
	}
	return stream
}

func FuzzParser(f *testing.F) {
	f.Add(clientFrame(true, Binary, "hello"), uint8(3), true)
	f.Add(append(clientFrame(false, Text, "a"), clientFrame(true, Continuation, "b")...), uint8(1), true)
	f.Add(clientFrame(true, Close, "\x03\xe8"), uint8(2), true)
	f.Add(AppendFrame(nil, true, Binary, bytes.Repeat([]byte{1}, 300), false, [4]byte{}), uint8(7), false)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, fromClient bool) {
		c := int(chunk%64) + 1
		deflate := chunk&0x80 != 0
		p := Parser{FromClient: fromClient, MaxMessageSize: 4096, Deflate: deflate}
		total := 0
		emit := func(op Opcode, b []byte) error {
			switch op {
			case Text, Binary:
				if len(b) > 4096 {
					t.Fatalf("message of %d bytes exceeds the limit", len(b))
				}
			case Close, Ping, Pong:
				if len(b) > MaxControlPayload {
					t.Fatalf("control payload of %d bytes", len(b))
				}
			default:
				t.Fatalf("emitted opcode %v", op)
			}
			total += len(b)
			return nil
		}
		in := append([]byte(nil), data...)
		var err error
		for len(in) > 0 && err == nil {
			n := min(c, len(in))
			err = p.Feed(in[:n], emit)
			in = in[n:]
		}
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("non-protocol error %v", err)
			}
		}
		if total > len(data) {
			t.Fatalf("emitted %d payload bytes from %d input bytes", total, len(data))
		}
		// Whole-input feeding must agree with chunked feeding.
		p2 := Parser{FromClient: fromClient, MaxMessageSize: 4096, Deflate: deflate}
		total2 := 0
		err2 := p2.Feed(append([]byte(nil), data...), func(op Opcode, b []byte) error { total2 += len(b); return nil })
		if (err == nil) != (err2 == nil) || total != total2 {
			t.Fatalf("chunked (err %v, %d bytes) and whole (err %v, %d bytes) disagree", err, total, err2, total2)
		}
	})
}

// Messages of up to 600 KiB, fragmented and fed in random chunks to two
// parsers taking turns: their buffers come from the shared pools and go
// back after each message; every message must come out whole and alone.
func TestParserLargeMessagesFromPooledBuffers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type stream struct {
		p    Parser
		b    []byte
		want []string
		out  []string
	}
	ss := []*stream{{p: Parser{FromClient: true}}, {p: Parser{FromClient: true}}}
	for _, s := range ss {
		for range 40 {
			payload := randomBytes(r, r.IntN(600<<10))
			s.b = appendFragmented(r, s.b, payload, 1+r.IntN(3), nil)
			s.want = append(s.want, string(payload))
		}
	}
	for len(ss[0].b)+len(ss[1].b) > 0 {
		s := ss[r.IntN(2)]
		n := min(1+r.IntN(40<<10), len(s.b))
		if err := s.p.Feed(s.b[:n], func(op Opcode, data []byte) error { s.out = append(s.out, string(data)); return nil }); err != nil {
			t.Fatal(err)
		}
		s.b = s.b[n:]
	}
	for i, s := range ss {
		if len(s.out) != len(s.want) {
			t.Fatalf("parser %d: %d messages, want %d", i, len(s.out), len(s.want))
		}
		for j := range s.want {
			if s.out[j] != s.want[j] {
				t.Fatalf("parser %d, message %d: %d bytes differ from the %d sent", i, j, len(s.out[j]), len(s.want[j]))
			}
		}
	}
}

// BenchmarkParserLargeMessage: a 256 KiB message (a large config's ack)
// arriving in 16 KiB reads.
func BenchmarkParserLargeMessage(b *testing.B) {
	msg := AppendFrame(nil, true, Binary, bytes.Repeat([]byte("x"), 256<<10+300), true, [4]byte{1, 2, 3, 4})
	buf := make([]byte, len(msg))
	var p Parser
	p.FromClient = true
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, msg) // Feed unmasks in place
		for rest := buf; len(rest) > 0; {
			n := min(16<<10, len(rest))
			if err := p.Feed(rest[:n], func(Opcode, []byte) error { return nil }); err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
	}
}
