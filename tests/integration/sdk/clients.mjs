// The official Anthropic and OpenAI SDKs against the proxy: node clients.mjs <base-url> <key>
// <anthropic-model> <openai-model>. Prints one JSON object with what each call returned; any
// SDK error ends the process with status 1 and its message.
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [base, key, claudeModel, gptModel] = process.argv.slice(2);
const out = {};

const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
const msg = await anthropic.messages.create({
  model: claudeModel,
  max_tokens: 64,
  system: "be brief",
  messages: [{ role: "user", content: "hello sdk" }],
});
out.message = { type: msg.type, text: msg.content[0].text, stop: msg.stop_reason, usage: msg.usage };

const stream = anthropic.messages.stream({
  model: gptModel,
  max_tokens: 64,
  messages: [{ role: "user", content: "stream sdk" }],
});
const events = [];
stream.on("streamEvent", (e) => events.push(e.type));
const final = await stream.finalMessage();
out.stream = { events, text: final.content[0].text, stop: final.stop_reason };

const tools = await anthropic.messages.create({
  model: gptModel,
  max_tokens: 64,
  tools: [{ name: "lookup", description: "d", input_schema: { type: "object" } }],
  tool_choice: { type: "tool", name: "lookup" },
  messages: [{ role: "user", content: "use the tool" }],
});
const use = tools.content.find((b) => b.type === "tool_use");
out.tool = { name: use.name, input: use.input, stop: tools.stop_reason };

try {
  await anthropic.messages.create({ model: "no-such-model", max_tokens: 5, messages: [{ role: "user", content: "x" }] });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, type: e.error?.error?.type };
}

const openai = new OpenAI({ baseURL: base + "/v1", apiKey: key, maxRetries: 0 });
const chat = await openai.chat.completions.create({
  model: gptModel,
  messages: [{ role: "user", content: "hello openai sdk" }],
});
out.chat = chat.choices[0].message.content;
let streamed = "";
const chunks = await openai.chat.completions.create({
  model: gptModel,
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "stream openai sdk" }],
});
let usage = null;
for await (const c of chunks) {
  streamed += c.choices[0]?.delta?.content ?? "";
  if (c.usage) usage = c.usage;
}
out.chat_stream = { text: streamed, usage_total: usage?.total_tokens ?? 0 };

console.log(JSON.stringify(out));
