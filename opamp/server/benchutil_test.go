package server

import (
	"bytes"
	"io"
	"net/http"

	"google.golang.org/protobuf/proto"
)

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
