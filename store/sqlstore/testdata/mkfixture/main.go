// Command mkfixture wrote the upgrade fixtures in store/sqlstore/testdata
// with the code before store/sqlstore (commit aa257cf), run from a checkout
// of that commit (testdata is not built with the module):
//
//	go run ./cmd/mkfixture sqlite /tmp/v6.sqlite
//	psql "$DSN" -c "CREATE SCHEMA steward_v6"
//	go run ./cmd/mkfixture postgres "$DSN&search_path=steward_v6"
//	pg_dump "$DSN" --schema=steward_v6 --no-owner --no-privileges --inserts > v6.postgres.sql
package main

import (
	"context"
	"crypto/ed25519"
	"log"
	"os"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/store/postgres"
	"github.com/stewardhq/steward/store/sqlite"
)

func main() {
	ctx := context.Background()
	var s steward.Store
	var err error
	if os.Args[1] == "sqlite" {
		s, err = sqlite.Open(ctx, os.Args[2])
	} else {
		s, err = postgres.Open(ctx, os.Args[2])
	}
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)
	id, _ := steward.ParseInstanceUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	must(s.PutAgent(ctx, &steward.Agent{
		ID: id,
		Description: &steward.AgentDescription{IdentifyingAttributes: []steward.KeyValue{
			{Key: steward.AttrServiceName, Value: "otelcol"}, {Key: steward.AttrServiceVersion, Value: "0.120.0"}}},
		Health:             &steward.ComponentHealth{Healthy: true, Status: "StatusOK", StartTime: at},
		RemoteConfigStatus: &steward.RemoteConfigStatus{Status: steward.RemoteConfigApplied, LastRemoteConfigHash: []byte{1, 2}},
		Labels:             map[string]string{"env": "prod"},
		Online:             true, Replica: "r1", ConnectedAt: at, LastSeen: at, CreatedAt: at, UpdatedAt: at,
	}))
	must(s.TouchAgents(ctx, map[steward.InstanceUID]time.Time{id: at.Add(time.Minute)}))
	c, err := s.PutConfig(ctx, &steward.Config{Name: "base", Files: steward.ConfigMap{"": {Body: []byte("receivers: {}\n"), ContentType: "text/yaml"}}, Author: "ann", CreatedAt: at})
	must(err)
	_, err = s.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: c.Name, Selector: "env=prod", Priority: 1})
	must(err)
	must(s.AppendEvents(ctx, &steward.Event{Type: "connected", AgentID: id, Message: "hello", Time: at}))
	must(s.(steward.RolloutStore).PutRollout(ctx, &steward.Rollout{Name: "ro", Assignment: "prod", UpdatedAt: at}))
	must(s.(steward.ReplicaStore).ReplicaAlive(ctx, "r1", at))
	ps := s.(steward.PackageStore)
	must(ps.PutPackage(ctx, &steward.Package{Name: "otelcol", Version: "1.0.0", Hash: make([]byte, 32), CreatedAt: at}))
	_, err = ps.PutPackageAssignment(ctx, &steward.PackageAssignment{Name: "pa", Packages: []steward.PackageRef{{Name: "otelcol", Version: "1.0.0"}}, CreatedAt: at, UpdatedAt: at})
	must(err)
	_, key, _ := ed25519.GenerateKey(nil)
	_, err = ps.PackageSigningKey(ctx, key)
	must(err)
	cs := s.(steward.CredentialStore)
	must(cs.PutToken(ctx, &steward.Token{ID: "tok", Hash: []byte("token-hash"), CreatedAt: at}))
	must(cs.PutEnrollmentToken(ctx, &steward.EnrollmentToken{ID: "enr", Hash: []byte("enroll-hash"), CreatedAt: at}))
	must(cs.PutCertificate(ctx, &steward.AgentCertificate{Serial: "ab01", AgentID: id, CreatedAt: at}))
	_, err = cs.Secret(ctx, "ca", []byte("secret"))
	must(err)
	must(s.(steward.AuditStore).AppendAudit(ctx, &steward.AuditEntry{Time: at, Actor: "ann", Action: "config.put", Target: "base"}))
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
