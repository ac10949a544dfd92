// Package dnstest answers DNS queries in process, for tests of code that
// resolves names (the webhook target checks): the internet's DNS cannot be
// reached from tests, and no query leaves the process.
package dnstest

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Resolver returns a resolver that answers A and AAAA queries from names;
// a name not in it does not exist.
func Resolver(names map[string][]netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go serve(server, names)
		return client, nil
	}}
}

// serve answers one query on c, framed as over TCP (a net.Pipe is no
// packet connection, so the resolver frames its query that way).
func serve(c net.Conn, names map[string][]netip.Addr) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, msg); err != nil {
		return
	}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true},
		Questions: []dnsmessage.Question{q}}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: dnsmessage.ClassINET, TTL: 60}
	addrs, ok := names[strings.TrimSuffix(q.Name.String(), ".")]
	if !ok {
		resp.RCode = dnsmessage.RCodeNameError
	}
	for _, ip := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && ip.Is4():
			resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: ip.As4()}})
		case q.Type == dnsmessage.TypeAAAA && ip.Is6():
			resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
		}
	}
	b, err := resp.Pack()
	if err != nil {
		return
	}
	_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
}
