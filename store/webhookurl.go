package store

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// TargetPolicy decides where webhooks may be sent.
type TargetPolicy struct {
	// AllowInsecure allows http URLs and targets on loopback, private,
	// link-local and other non-public addresses (HUSTACK_WEBHOOK_ALLOW_INSECURE,
	// for tests and local use).
	AllowInsecure bool
	// Resolver looks host names up (net.DefaultResolver when nil).
	Resolver *net.Resolver
}

// nonPublic lists the address ranges a webhook may not target without
// AllowInsecure: anything that is not the public internet.
var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this" network
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"64:ff9b::/96",    // NAT64 (would reach IPv4 behind it)
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4 (embeds IPv4)
		"fc00::/7",        // unique local, AWS metadata fd00:ec2::254
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
		"2001::/32",       // Teredo (embeds IPv4)
		"::/96",           // IPv4-compatible (deprecated, embeds IPv4)
		"fec0::/10",       // site-local (deprecated)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// PublicAddr reports whether ip is a public internet address a webhook may
// be sent to.
func PublicAddr(ip netip.Addr) bool {
	// A zone ("fe80::1%eth0") names a local interface: never public, and
	// prefixes would not match a zoned address anyway.
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// CheckAddr refuses a non-public address unless the policy allows it; the
// worker calls it for every connection it opens, after DNS resolution.
func (p TargetPolicy) CheckAddr(ip netip.Addr) error {
	if p.AllowInsecure || PublicAddr(ip) {
		return nil
	}
	return Errorf(EBADREQUEST, "url: %s is not a public address; webhooks are only sent to the public internet.", ip.Unmap())
}

// CheckURL validates a subscription URL: absolute https (or http with
// AllowInsecure), no credentials or fragment, and a host whose every
// address is public (unless AllowInsecure). DNS can change, so the worker
// checks the address again when it connects.
func (p TargetPolicy) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	switch {
	case raw == "":
		return nil, FieldError("url", "is required.")
	case len(raw) > MaxWebhookURL:
		return nil, FieldError("url", "must be at most %d characters.", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, FieldError("url", "must be an absolute URL such as https://example.com/hooks/hustack.")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowInsecure:
	case u.Scheme == "http":
		return nil, FieldError("url", "must use https.")
	default:
		return nil, FieldError("url", "must use https, not %s.", u.Scheme)
	}
	if u.User != nil {
		return nil, FieldError("url", "must not contain credentials; authenticate the deliveries by their signature.")
	}
	if u.Fragment != "" {
		return nil, FieldError("url", "must not contain a fragment (#...).")
	}
	if p.AllowInsecure {
		return u, nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(ip); err != nil {
			return nil, err
		}
		return u, nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return nil, FieldError("url", "%s is not a public host; webhooks are only sent to the public internet.", host)
	}
	res := p.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil, FieldError("url", "cannot resolve host %s.", host)
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return nil, FieldError("url", "%s resolves to %s, which is not a public address; webhooks are only sent to the public internet.", host, a.Unmap())
		}
	}
	return u, nil
}
