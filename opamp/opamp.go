// Package opamp holds the protocol core shared by Steward's OpAMP server and
// client: the WebSocket message header, payload encoding, capability sets and
// instance UID handling. Wire types are opamp-go's protobufs.
package opamp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
)

// DefaultPath is the OpAMP endpoint path on both transports.
const DefaultPath = "/v1/opamp"

// DefaultPort is Steward's OpAMP listen port.
const DefaultPort = 4320

// WSHeader is the only WebSocket message header defined by the spec: every
// binary WebSocket message starts with varint 0 before the protobuf payload.
const WSHeader = 0

// ContentType is the HTTP Content-Type of OpAMP payloads.
const ContentType = "application/x-protobuf"

// ErrHeader reports a WebSocket message whose header is not the varint 0.
var ErrHeader = errors.New("opamp: unsupported websocket message header")

// AppendWS appends the WebSocket encoding of m (header, then payload) to dst.
func AppendWS(dst []byte, m proto.Message) ([]byte, error) {
	dst = binary.AppendUvarint(dst, WSHeader)
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}

// DecodeWS decodes one WebSocket message payload into m. It fails with
// ErrHeader when the header is missing or not 0, and with a wrapped protobuf
// error when the payload is malformed.
func DecodeWS(b []byte, m proto.Message) error {
	h, n := binary.Uvarint(b)
	if n <= 0 || h != WSHeader {
		return ErrHeader
	}
	if err := proto.Unmarshal(b[n:], m); err != nil {
		return fmt.Errorf("opamp: malformed message: %w", err)
	}
	return nil
}

// ServerCapabilities that Steward's control plane sets in every reply.
const ServerCapabilities = uint64(protobufs.ServerCapabilities_ServerCapabilities_AcceptsStatus |
	protobufs.ServerCapabilities_ServerCapabilities_OffersRemoteConfig |
	protobufs.ServerCapabilities_ServerCapabilities_AcceptsEffectiveConfig |
	protobufs.ServerCapabilities_ServerCapabilities_OffersPackages |
	protobufs.ServerCapabilities_ServerCapabilities_AcceptsPackagesStatus |
	protobufs.ServerCapabilities_ServerCapabilities_OffersConnectionSettings |
	protobufs.ServerCapabilities_ServerCapabilities_AcceptsConnectionSettingsRequest)
