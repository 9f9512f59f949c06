package websocket

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"
)

// AppendFrame appends one frame to dst and returns the extended slice. When
// masked is true (frames sent by a client) the payload is masked with key;
// payload itself is not modified.
func AppendFrame(dst []byte, fin bool, op Opcode, payload []byte, masked bool, key [4]byte) []byte {
	dst = AppendFrameHeader(dst, fin, op, len(payload), masked, key)
	if !masked {
		return append(dst, payload...)
	}
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(key, 0, dst[start:])
	return dst
}

// AppendFrameHeader appends the header of a frame whose payload is length
// bytes long (and, when masked, the key); the caller appends the payload,
// masked with key when masked is true.
func AppendFrameHeader(dst []byte, fin bool, op Opcode, length int, masked bool, key [4]byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	var b1 byte
	if masked {
		b1 = 0x80
	}
	switch n := length; {
	case n <= 125:
		dst = append(dst, b0, b1|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, b1|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if masked {
		dst = append(dst, key[:]...)
	}
	return dst
}

// Mask XORs b in place with key, as if b started at byte offset pos of a
// payload, and returns the offset after b.
func Mask(key [4]byte, pos int, b []byte) int { return maskBytes(key, pos, b) }

// FrameHeaderSize is the largest frame header: 2 bytes, 8 of extended
// length and 4 of masking key.
const FrameHeaderSize = 14

// AppendClosePayload appends a close frame payload (status code, then
// reason) to dst. The reason is cut to fit the 125-byte control limit.
func AppendClosePayload(dst []byte, code int, reason string) []byte {
	if code == CloseNoStatus || code == 0 {
		return dst
	}
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// ParseClosePayload decodes a close frame payload. A payload of 0 bytes
// gives CloseNoStatus; a payload of 1 byte, a code that may not be sent or
// a reason that is not UTF-8 is a ProtocolError.
func ParseClosePayload(b []byte) (code int, reason string, err error) {
	switch {
	case len(b) == 0:
		return CloseNoStatus, "", nil
	case len(b) == 1:
		return 0, "", protoErr("close frame payload of 1 byte")
	}
	code = int(binary.BigEndian.Uint16(b))
	if !validCloseCode(code) {
		return 0, "", protoErr("invalid close code %d", code)
	}
	if !utf8.Valid(b[2:]) {
		return 0, "", &ProtocolError{Code: CloseInvalidPayload, Reason: "close reason is not valid UTF-8"}
	}
	return code, string(b[2:]), nil
}

// maskBytes XORs b with key, starting at key offset pos, and returns the
// offset after b.
func maskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	// Align to the key, then process 8 bytes at a time.
	for len(b) > 0 && pos != 0 {
		b[0] ^= key[pos]
		b = b[1:]
		pos = (pos + 1) & 3
	}
	if len(b) >= 8 {
		k32 := uint64(binary.LittleEndian.Uint32(key[:]))
		k := k32 | k32<<32
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[pos]
		pos = (pos + 1) & 3
	}
	return pos
}

// Parser is an incremental frame parser: it is fed bytes in chunks of any
// size, as they arrive, and emits whole messages and control frames. Its
// zero value parses frames sent by a server (unmasked) with the default
// size limit. A Parser keeps a buffer only while a frame or message is
// incomplete; when idle it holds no payload memory.
//
// After Feed returns an error the Parser is failed: every later Feed
// returns the same error.
type Parser struct {
	// MaxMessageSize limits a reassembled data message; <= 0 means
	// DefaultMaxMessageSize. Exceeding it is ErrMessageTooBig. For a
	// compressed message it limits the compressed size; Inflate limits
	// the rest.
	MaxMessageSize int64
	// FromClient makes the parser require masked frames (server side);
	// otherwise masked frames are a protocol error (client side).
	FromClient bool
	// Deflate accepts RSV1 on the first frame of a data message
	// (permessage-deflate negotiated); Compressed reports it during emit.
	Deflate bool

	// The small fields are together: a server keeps a Parser per idle
	// connection, so padding costs memory per agent.
	compressed bool // the data message in progress is compressed
	inFrame    bool
	fin        bool
	masked     bool
	op         Opcode
	msgOp      Opcode // opcode of the data message in progress, 0 if none
	hn         uint8  // header bytes buffered
	kpos       uint8  // position in key of the next payload byte
	key        [4]byte
	hdr        [FrameHeaderSize]byte

	left int64 // payload bytes of the current frame still to come
	err  error
	msg  []byte // payload of the data message in progress
	ctrl []byte // payload of a split control frame
}

// Compressed reports, while emit runs for a data message, whether that
// message is compressed (RSV1 with Deflate set): its payload must go
// through Inflate, and a Text message's UTF-8 has not been checked.
func (p *Parser) Compressed() bool { return p.compressed }

// Idle reports whether the parser holds no partial frame or message.
func (p *Parser) Idle() bool { return !p.inFrame && p.hn == 0 && p.msgOp == 0 }

// Err returns the error that failed the parser, or nil.
func (p *Parser) Err() error { return p.err }

func (p *Parser) maxSize() int64 {
	if p.MaxMessageSize <= 0 {
		return DefaultMaxMessageSize
	}
	return p.MaxMessageSize
}

// Feed parses b, calling emit for each complete data message (op Text or
// Binary, reassembled from fragments) and each control frame (Close, Ping,
// Pong), in order. b is modified (unmasked in place). The payload passed
// to emit is only valid during the call: it may alias b or an internal
// buffer that is reused. An error from emit stops parsing and is returned
// (and fails the parser); otherwise Feed returns a *ProtocolError for
// invalid input, and nil when all of b was consumed.
func (p *Parser) Feed(b []byte, emit func(op Opcode, payload []byte) error) error {
	if p.err != nil {
		return p.err
	}
	if err := p.feed(b, emit); err != nil {
		p.err = err
		p.msg, p.ctrl = nil, nil
		return err
	}
	return nil
}

func (p *Parser) feed(b []byte, emit func(op Opcode, payload []byte) error) error {
	for len(b) > 0 {
		if !p.inFrame {
			// Collect the header: first the 2 fixed bytes, then the rest.
			var hdr []byte
			need := headerLen(p.hn, p.hdr[:], b)
			if p.hn == 0 && len(b) >= need {
				hdr, b = b[:need], b[need:] // whole header in b: no copy
			} else {
				for {
					c := copy(p.hdr[p.hn:need], b)
					p.hn += uint8(c)
					b = b[c:]
					if int(p.hn) < need {
						if len(b) == 0 {
							return nil
						}
						continue
					}
					if n2 := headerLen(p.hn, p.hdr[:], nil); n2 > need {
						need = n2
						continue
					}
					break
				}
				hdr = p.hdr[:need]
				p.hn = 0
			}
			if err := p.header(hdr); err != nil {
				return err
			}
			// Fast path: a whole frame that completes something is in b.
			if p.left <= int64(len(b)) && (p.op.IsControl() || (p.fin && p.op != Continuation)) {
				n := int(p.left)
				payload := b[:n]
				b = b[n:]
				if p.masked {
					maskBytes(p.key, 0, payload)
				}
				p.inFrame, p.left = false, 0
				if err := p.complete(p.op, payload, emit); err != nil {
					return err
				}
				continue
			}
			if p.left == 0 {
				if err := p.frameDone(emit); err != nil {
					return err
				}
				continue
			}
		}
		n := len(b)
		if int64(n) > p.left {
			n = int(p.left)
		}
		chunk := b[:n]
		b = b[n:]
		if p.masked {
			p.kpos = uint8(maskBytes(p.key, int(p.kpos), chunk))
		}
		if p.op.IsControl() {
			p.ctrl = append(p.ctrl, chunk...)
		} else {
			if cap(p.msg)-len(p.msg) < n {
				// Grow geometrically, but never past the end of this
				// frame, nor to more than twice what has arrived, so a
				// lying header cannot make us allocate ahead of the bytes.
				l := int64(len(p.msg))
				newCap := min(l+p.left, int64(cap(p.msg))+max(int64(cap(p.msg)), 64<<10))
				newCap = max(newCap, l+int64(n))
				nb := getMsgBuf(newCap, l+int64(n))
				nb = append(nb, p.msg...)
				putMsgBuf(p.msg)
				p.msg = nb
			}
			p.msg = append(p.msg, chunk...)
		}
		p.left -= int64(n)
		if p.left == 0 {
			if err := p.frameDone(emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// headerLen returns the length of the frame header given the bytes known
// so far: the buffered hdr[:hn] followed by more.
func headerLen(hn uint8, hdr []byte, more []byte) int {
	var b1 byte
	switch {
	case hn >= 2:
		b1 = hdr[1]
	case hn == 1 && len(more) >= 1:
		b1 = more[0]
	case hn == 0 && len(more) >= 2:
		b1 = more[1]
	default:
		return 2
	}
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// header validates a complete frame header and starts the frame.
func (p *Parser) header(h []byte) error {
	b0, b1 := h[0], h[1]
	op := Opcode(b0 & 0x0F)
	if b0&0x70 != 0 {
		if b0&0x30 != 0 || !p.Deflate {
			return protoErr("reserved bits set (no extension negotiated)")
		}
		if op.IsControl() || op == Continuation {
			return protoErr("RSV1 set on a %s frame", op)
		}
	}
	fin := b0&0x80 != 0
	masked := b1&0x80 != 0
	switch op {
	case Continuation, Text, Binary, Close, Ping, Pong:
	default:
		return protoErr("reserved opcode %d", byte(op))
	}
	if p.FromClient && !masked {
		return protoErr("frame from client is not masked")
	}
	if !p.FromClient && masked {
		return protoErr("frame from server is masked")
	}
	var n uint64
	i := 2
	switch l := b1 & 0x7F; l {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
		i = 4
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
		i = 10
		if n>>63 != 0 {
			return protoErr("frame length has the most significant bit set")
		}
	default:
		n = uint64(l)
	}
	if masked {
		copy(p.key[:], h[i:i+4])
	}
	if op.IsControl() {
		if !fin {
			return protoErr("fragmented %s frame", op)
		}
		if n > MaxControlPayload {
			return protoErr("%s frame payload of %d bytes exceeds 125", op, n)
		}
	} else {
		if op == Continuation && p.msgOp == 0 {
			return protoErr("continuation frame without a message in progress")
		}
		if op != Continuation && p.msgOp != 0 {
			return protoErr("new %s message while a fragmented message is in progress", op)
		}
		if uint64(len(p.msg))+n > uint64(p.maxSize()) {
			return ErrMessageTooBig
		}
		if op != Continuation {
			p.msgOp = op
			p.compressed = b0&RSV1 != 0
		}
	}
	p.inFrame, p.fin, p.op, p.masked, p.kpos, p.left = true, fin, op, masked, 0, int64(n)
	return nil
}

// frameDone completes the current frame from the buffered payload.
func (p *Parser) frameDone(emit func(Opcode, []byte) error) error {
	p.inFrame = false
	if p.op.IsControl() {
		payload := p.ctrl
		p.ctrl = p.ctrl[:0]
		return p.complete(p.op, payload, emit)
	}
	if !p.fin {
		return nil
	}
	return p.complete(p.op, p.msg, emit)
}

// complete validates and emits a finished control frame or data message.
// For data, payload is the whole message.
func (p *Parser) complete(op Opcode, payload []byte, emit func(Opcode, []byte) error) error {
	if op.IsControl() {
		if op == Close {
			if _, _, err := ParseClosePayload(payload); err != nil {
				return err
			}
		}
		return emit(op, payload)
	}
	mop := p.msgOp
	p.msgOp = 0
	if mop == Text && !p.compressed && !utf8.Valid(payload) {
		return &ProtocolError{Code: CloseInvalidPayload, Reason: "text message is not valid UTF-8"}
	}
	err := emit(mop, payload)
	putMsgBuf(p.msg) // emit is done with it (see Feed)
	p.msg = nil      // release: idle parsers hold no payload memory
	p.compressed = false
	return err
}

// Buffers of reassembled messages are recycled through pools by size
// class (powers of two from 64 KiB): a fleet acking a large config sends
// one large message per agent, and allocating (and zeroing) each anew cost
// a tenth of the server's CPU at 10,000 agents acking 256 KiB (see
// docs/performance.md). A pooled buffer may be larger than the frame
// needs, but never more than 64 KiB or twice what has arrived: the
// parser's memory bound is unchanged.
const (
	minPooledShift = 16 // 64 KiB
	maxPooledShift = 24 // 16 MiB, DefaultMaxMessageSize
)

var msgBufs [maxPooledShift - minPooledShift + 1]sync.Pool

// getMsgBuf returns an empty buffer to grow a message to: of capacity
// want, or the size class at or above it when that is at most 64 KiB or
// twice arrived (the bytes that will have arrived: the parser's own
// bound), else the class at or above arrived.
func getMsgBuf(want, arrived int64) []byte {
	bound := max(2*arrived, 1<<minPooledShift)
	shift := classShift(want)
	if shift > maxPooledShift || int64(1)<<shift > bound {
		shift = classShift(arrived)
	}
	if shift > maxPooledShift || int64(1)<<shift > bound {
		return make([]byte, 0, want)
	}
	if b, ok := msgBufs[shift-minPooledShift].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<shift)
}

// putMsgBuf recycles a buffer getMsgBuf pooled (any other is left to the
// garbage collector).
func putMsgBuf(b []byte) {
	c := cap(b)
	if c < 1<<minPooledShift || c > 1<<maxPooledShift || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	msgBufs[classShift(int64(c))-minPooledShift].Put(&b)
}

// classShift is the exponent of the smallest power of two at or above n
// (at least minPooledShift).
func classShift(n int64) int {
	shift := minPooledShift
	for int64(1)<<shift < n {
		shift++
	}
	return shift
}
