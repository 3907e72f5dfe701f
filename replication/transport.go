package replication

import (
	"crypto/tls"
	"net/http"
	"time"
)

// maxHealthCheck bounds how long a connection to central may stay silent
// before the client asks it for a ping, and how long it waits for the
// answer.
const maxHealthCheck = 15 * time.Second

// NewTransport returns the HTTP transport a shop talks to central with
// (replication and loyalty): tlsConf for its TLS, and a health check on
// each connection. HTTP/2 sends every request over one connection and a
// request that times out leaves it open, so a connection gone dark without
// a FIN or RST (a NAT or a firewall forgetting it) would take every later
// request with it until the kernel gives up on it, some 15 minutes later.
// A connection silent for min(requestTimeout, 15 s) is pinged, and closed
// when the ping is not answered within as long again.
func NewTransport(tlsConf *tls.Config, requestTimeout time.Duration) *http.Transport {
	check := maxHealthCheck
	if requestTimeout > 0 && requestTimeout < check {
		check = requestTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: check, PingTimeout: check, WriteByteTimeout: check}
	return tr
}
