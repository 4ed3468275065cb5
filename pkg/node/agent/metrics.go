package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	reg            *prometheus.Registry
	reconciles     *prometheus.CounterVec
	reconcileTime  prometheus.Histogram
	routes         prometheus.Gauge
	routeChanges   *prometheus.CounterVec
	routeConflicts prometheus.Gauge
	conflistWrites prometheus.Counter
	masqWrites     prometheus.Counter
	watchErrors    prometheus.Counter
	nodes          prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podns_node_reconciles_total", Help: "Reconciliations by result (ok, error).",
		}, []string{"result"}),
		reconcileTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podns_node_reconcile_duration_seconds", Help: "Time of one reconciliation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podns_node_routes", Help: "Routes to other nodes' pod CIDRs owned by the agent.",
		}),
		routeChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podns_node_route_changes_total", Help: "Route changes by operation (add, replace, delete).",
		}, []string{"op"}),
		routeConflicts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podns_node_route_conflicts", Help: "Wanted routes whose destination is held by a route the agent did not make.",
		}),
		conflistWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podns_node_conflist_writes_total", Help: "Times the CNI conflist was (re)written.",
		}),
		masqWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podns_node_masquerade_writes_total", Help: "Times the masquerade table was (re)written.",
		}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podns_node_watch_errors_total", Help: "List/watch errors of the Node informer (each is followed by a re-list).",
		}),
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podns_node_nodes", Help: "Nodes in the informer cache.",
		}),
	}
	m.reg.MustRegister(m.reconciles, m.reconcileTime, m.routes, m.routeChanges, m.routeConflicts,
		m.conflistWrites, m.masqWrites, m.watchErrors, m.nodes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
