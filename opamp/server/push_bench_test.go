package server

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp/websocket"
	"google.golang.org/protobuf/proto"
)

// BenchmarkFleetPushEncode is the encoding cost of one fleet-wide push:
// one remote config sent to 10,000 WebSocket agents, each message with its
// own instance_uid. "shared" is what Send does (the config marshalled, and
// compressed, once per push: see encodes/op); "per-agent" marshals the
// whole message for every agent, as the transport did before.
func BenchmarkFleetPushEncode(b *testing.B) {
	const agents = 10000
	for _, size := range []int{4 << 10, 256 << 10} {
		body := bytes.Repeat([]byte("exporters: {otlphttp: {endpoint: https://collector.example:4318}}\n"), size/66)
		for _, deflate := range []bool{false, true} {
			name := fmt.Sprintf("%dKiB/deflate=%v", size>>10, deflate)
			b.Run(name+"/shared", func(b *testing.B) {
				s, err := New(Config{Handler: newTestHandler(), Logger: quietLog})
				if err != nil {
					b.Fatal(err)
				}
				defer s.stop()
				conns := make([]*wsConn, agents)
				for i := range conns {
					conns[i] = &wsConn{s: s, deflate: deflate, uid: [16]byte(agentUID(i)), hasUID: true}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					rc := pushConfig(append(body, byte(i))) // a new config version per push
					for _, c := range conns {
						if _, err := c.encode(&protobufs.ServerToAgent{InstanceUid: c.uid[:], RemoteConfig: rc}); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(s.Stats().ConfigEncodings)/float64(b.N), "encodes/op")
			})
			b.Run(name+"/per-agent", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					rc := pushConfig(append(body, byte(i)))
					for j := 0; j < agents; j++ {
						out, err := proto.Marshal(&protobufs.ServerToAgent{InstanceUid: agentUID(j), RemoteConfig: rc})
						if err != nil {
							b.Fatal(err)
						}
						if deflate {
							websocket.AppendDeflate(nil, out)
						}
					}
				}
				b.ReportMetric(agents, "encodes/op")
			})
		}
	}
}
