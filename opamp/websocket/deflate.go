package websocket

import (
	"bytes"
	"compress/flate"
	"io"
	"net/http"
	"strings"
	"sync"
)

// RSV1 is the bit of a frame's first byte that, with permessage-deflate
// negotiated, marks the first frame of a compressed message.
const RSV1 = 0x40

// DeflateExtension is the WebSocket compression extension (RFC 7692).
const DeflateExtension = "permessage-deflate"

// deflateAccept accepts permessage-deflate without context takeover in
// either direction: every message is compressed on its own, so no
// per-connection compression state is kept (compressors are pooled).
const deflateAccept = DeflateExtension + "; server_no_context_takeover; client_no_context_takeover"

// DeflateOffer is the Sec-WebSocket-Extensions request value a client
// sends to offer permessage-deflate without context takeover.
const DeflateOffer = deflateAccept

// NegotiateDeflate returns the Sec-WebSocket-Extensions response value
// that accepts permessage-deflate when the request offers it in a form this
// package supports (any offer without a server_max_window_bits below 15 or
// unknown parameters), or "" to decline compression.
func NegotiateDeflate(h http.Header) string {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for _, offer := range strings.Split(v, ",") {
			params := strings.Split(offer, ";")
			if strings.TrimSpace(params[0]) != DeflateExtension {
				continue
			}
			ok := true
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				val = strings.Trim(strings.TrimSpace(val), `"`)
				switch strings.TrimSpace(k) {
				case "server_no_context_takeover", "client_no_context_takeover", "client_max_window_bits":
				case "server_max_window_bits":
					ok = ok && val == "15" // compress/flate always uses a 32 KiB window
				default:
					ok = false
				}
			}
			if ok {
				return deflateAccept
			}
		}
	}
	return ""
}

var (
	flateReaders sync.Pool
	flateWriters sync.Pool
	// The sync-flush marker RFC 7692 strips, then an empty final stored
	// block so the decompressor ends cleanly.
	deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
)

// ErrInvalidDeflate reports a compressed message that does not inflate.
var ErrInvalidDeflate = &ProtocolError{Code: CloseInvalidPayload, Reason: "invalid permessage-deflate data"}

// Inflate appends the decompressed form of a permessage-deflate message
// payload to dst. It fails with ErrMessageTooBig as soon as the output would
// exceed limit bytes (so a compression bomb costs at most limit bytes), and
// with ErrInvalidDeflate when the payload is not valid DEFLATE data.
func Inflate(dst, payload []byte, limit int64) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(payload), bytes.NewReader(deflateTail))
	var fr io.ReadCloser
	if v := flateReaders.Get(); v != nil {
		fr = v.(io.ReadCloser)
		_ = fr.(flate.Resetter).Reset(src, nil)
	} else {
		fr = flate.NewReader(src)
	}
	defer flateReaders.Put(fr)
	buf := bytes.NewBuffer(dst)
	n, err := buf.ReadFrom(io.LimitReader(fr, limit-int64(len(dst))+1))
	if err != nil {
		return dst, ErrInvalidDeflate
	}
	if int64(len(dst))+n > limit {
		return dst, ErrMessageTooBig
	}
	return buf.Bytes(), nil
}

// sliceWriter appends to a byte slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// AppendDeflate appends payload compressed for permessage-deflate (no
// context takeover) to dst. The frame carrying it must have RSV1 set.
func AppendDeflate(dst, payload []byte) []byte {
	out := appendFlushed(dst, payload)
	if bytes.HasSuffix(out[len(dst):], deflateTail[:4]) {
		out = out[:len(out)-4]
	}
	return out
}

// AppendDeflatePrefix appends payload compressed as the first part of a
// permessage-deflate message whose remainder is compressed separately and
// appended to it with AppendDeflate. The part ends with a sync flush: a
// byte-aligned, non-final block boundary, after which a decompressor reads
// the next part's blocks as if one compressor had written both (RFC 1951
// section 3.2.3: a stream is a sequence of blocks). The parts share no
// history (each compressor starts empty), which is what a message without
// context takeover allows. So one compressed prefix, made once, serves
// every message that starts with the same bytes.
func AppendDeflatePrefix(dst, payload []byte) []byte { return appendFlushed(dst, payload) }

// appendFlushed appends payload compressed and sync-flushed: the output
// ends with the empty stored block 00 00 ff ff.
func appendFlushed(dst, payload []byte) []byte {
	w := &sliceWriter{b: dst}
	var fw *flate.Writer
	if v := flateWriters.Get(); v != nil {
		fw = v.(*flate.Writer)
		fw.Reset(w)
	} else {
		fw, _ = flate.NewWriter(w, flate.BestSpeed)
	}
	_, _ = fw.Write(payload)
	_ = fw.Flush()
	fw.Reset(io.Discard)
	flateWriters.Put(fw)
	return w.b
}

// AppendDeflateStored appends payload as AppendDeflate would, but in
// stored (uncompressed) DEFLATE blocks: no compressor is run, which is
// cheaper for a few bytes that follow an AppendDeflatePrefix part. Like
// AppendDeflate's output it ends with the header of an empty stored block
// whose 00 00 ff ff the receiver appends (RFC 7692 section 7.2.2).
func AppendDeflateStored(dst, payload []byte) []byte {
	for len(payload) > 0 {
		n := min(len(payload), 0xffff)
		dst = append(dst, 0x00, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8)) // BFINAL 0, BTYPE 00, LEN, NLEN
		dst = append(dst, payload[:n]...)
		payload = payload[n:]
	}
	return append(dst, 0x00)
}
