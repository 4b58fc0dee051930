// Runs an agent through the AG-UI endpoint with the official client (@ag-ui/client's
// HttpAgent: it validates every event and verifies the sequence), first with a frontend
// tool, then the follow-up run carrying the tool's result. Prints one JSON line.
// Usage: node run.mjs <endpoint url> <api key>
import { HttpAgent } from "@ag-ui/client";

const [url, key] = process.argv.slice(2);
const agent = new HttpAgent({ url, headers: { Authorization: `Bearer ${key}` } });
agent.addMessage({ id: crypto.randomUUID(), role: "user", content: "Weather in Oslo?" });
const tools = [
  {
    name: "show_weather",
    description: "Show the weather card.",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
];
const seen = [];
const subscriber = { onEvent: ({ event }) => seen.push(event.type) };
let pending = [];
const first = await agent.runAgent(
  { tools },
  {
    ...subscriber,
    onRunFinishedEvent: ({ pendingToolCallIds }) => {
      pending = pendingToolCallIds ?? [];
    },
  },
);
for (const id of pending) {
  agent.addMessage({ id: crypto.randomUUID(), role: "tool", toolCallId: id, content: "Oslo: 12 degrees" });
}
const second = await agent.runAgent({ tools }, subscriber);
const last = agent.messages[agent.messages.length - 1];
console.log(
  JSON.stringify({
    events: seen,
    pending,
    firstNew: first.newMessages.map((m) => m.role),
    secondNew: second.newMessages.map((m) => m.role),
    answer: last.content,
  }),
);
