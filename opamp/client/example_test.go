package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/stewardhq/steward/opamp/client"
)

// An agent that accepts remote configuration and reports its status over
// WebSocket. (The server here is opamp-go's, standing in for Steward's
// control plane; it offers one configuration.)
func Example() {
	reported := make(chan struct{})
	var once sync.Once
	srv := server.New(nil)
	err := srv.Start(server.StartSettings{ListenEndpoint: "127.0.0.1:0", Settings: server.Settings{Callbacks: types.Callbacks{
		OnConnecting: func(*http.Request) types.ConnectionResponse {
			return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
				OnMessage: func(_ context.Context, _ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
					if m.RemoteConfigStatus != nil {
						once.Do(func() {
							fmt.Println("server: config status", m.RemoteConfigStatus.Status)
							close(reported)
						})
						return nil
					}
					if m.AgentDescription == nil { // offer the config in reply to the first report only
						return nil
					}
					return &protobufs.ServerToAgent{RemoteConfig: &protobufs.AgentRemoteConfig{
						ConfigHash: []byte("v1"),
						Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
							"": {Body: []byte("exporters: {debug: {}}"), ContentType: "text/yaml"},
						}},
					}}
				},
			}}
		},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(context.Background())

	// The agent side.
	var c *client.Client
	c, err = client.New(client.Settings{
		Endpoint: "ws://" + srv.Addr().String() + "/v1/opamp",
		Description: &protobufs.AgentDescription{IdentifyingAttributes: []*protobufs.KeyValue{{
			Key: "service.name", Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: "my-agent"}},
		}}},
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig,
		Callbacks: client.Callbacks{
			OnMessage: func(ctx context.Context, msg *client.MessageData) {
				if msg.RemoteConfig == nil {
					return
				}
				fmt.Printf("agent: got config %q\n", msg.RemoteConfig.Config.ConfigMap[""].Body)
				// Apply it, then report the outcome.
				_ = c.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{
					LastRemoteConfigHash: msg.RemoteConfig.ConfigHash,
					Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
				})
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	<-reported

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil { // sends agent_disconnect
		log.Fatal(err)
	}
	// Output:
	// agent: got config "exporters: {debug: {}}"
	// server: config status RemoteConfigStatuses_APPLIED
}
