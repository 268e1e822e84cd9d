/** A run's jobs as a graph: laid out by dagre (left to right, by `needs`), drawn as SVG, statuses live. */
import dagre from "@dagrejs/dagre";
import { useMemo } from "preact/hooks";
import { statusIcon, statusText } from "./status.js";

export interface GraphNode {
  id: string;
  label: string;
  status: string;
  /** A short note under the status: why it waits, how long it took. */
  note?: string | undefined;
}

const WIDTH = 180;
const HEIGHT = 52;

export function JobGraph(props: {
  nodes: readonly GraphNode[];
  edges: readonly (readonly [string, string])[];
  selected?: string | undefined;
  onSelect: (id: string) => void;
}) {
  const shape = props.nodes.map((n) => n.id).join("\n") + props.edges.map((e) => e.join(">")).join("\n");
  // Laid out again only when the jobs or edges change, not on every status change.
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 48, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of props.nodes) g.setNode(node.id, { width: WIDTH, height: HEIGHT });
    for (const [from, to] of props.edges) if (g.hasNode(from) && g.hasNode(to)) g.setEdge(from, to);
    dagre.layout(g);
    const graph = g.graph();
    return {
      width: graph.width ?? 0,
      height: graph.height ?? 0,
      at: new Map(props.nodes.map((n) => [n.id, g.node(n.id)])),
      edges: g.edges().map((e) => ({
        from: e.v,
        to: e.w,
        points: (g.edge(e).points ?? []) as { x: number; y: number }[],
      })),
    };
  }, [shape]);
  return (
    <svg
      class="graph"
      aria-label="Job graph"
      width={layout.width}
      height={layout.height}
      viewBox={`0 0 ${layout.width} ${layout.height}`}
    >
      <defs>
        <marker
          id="arrow"
          viewBox="0 0 10 10"
          refX="9"
          refY="5"
          markerWidth="7"
          markerHeight="7"
          orient="auto"
        >
          <path d="M0,0 L10,5 L0,10 z" class="arrow" />
        </marker>
      </defs>
      {layout.edges.map((e) => (
        <path
          key={`${e.from}>${e.to}`}
          class="edge"
          data-edge={`${e.from}>${e.to}`}
          marker-end="url(#arrow)"
          d={e.points.map((p, i) => `${i === 0 ? "M" : "L"}${p.x},${p.y}`).join(" ")}
        />
      ))}
      {props.nodes.map((node) => {
        const at = layout.at.get(node.id);
        if (!at) return null;
        const selected = props.selected === node.id;
        return (
          // biome-ignore lint/a11y/useSemanticElements: an SVG group cannot be a <button>; it acts as one
          <g
            key={node.id}
            class={`node status-${node.status}${selected ? " selected" : ""}`}
            data-job={node.id}
            data-status={node.status}
            transform={`translate(${at.x - WIDTH / 2},${at.y - HEIGHT / 2})`}
            role="button"
            tabIndex={0}
            aria-pressed={selected}
            aria-label={`${node.label}: ${statusText(node.status)}${node.note ? `, ${node.note}` : ""}`}
            onClick={() => props.onSelect(node.id)}
            onKeyDown={(event) => {
              if (event.key === "Enter" || event.key === " ") {
                event.preventDefault();
                props.onSelect(node.id);
              }
            }}
          >
            <title>{node.note ? `${node.label}: ${node.note}` : node.label}</title>
            <rect width={WIDTH} height={HEIGHT} rx="6" />
            <text x="10" y="20" class="label">
              {clip(node.label, 24)}
            </text>
            <text x="10" y="40" class="state">
              {`${statusIcon(node.status)} ${statusText(node.status)}${node.note ? ` · ${clip(node.note, 14)}` : ""}`}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
