-- Load for `wrk` against /v1/search (see README, "Measuring"). Rotates through seed questions.
local questions = {
  "山梨県は伴走支援をどんな体制で受け入れた？",
  "オンラインよろず相談はどのように実施されましたか",
  "宮崎県の共同調達・共同利用の目標は？",
  "市町DX支援パッケージの研修メニュー",
  "地域社会DX推進に必要なスキルセット",
  "北海道の連携地域はどこですか",
}
local path = os.getenv("WRK_PATH") or "/v1/search"
local field = path == "/v1/ask" and "question" or "query"
local key = os.getenv("WRK_KEY") or "demo-wakayama-key"
local counter = 0
request = function()
  counter = counter + 1
  local q = questions[(counter % #questions) + 1]
  local body = string.format('{"%s": "%s", "top_k": 5}', field, q)
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end
done = function(summary, latency, requests)
  io.write(string.format("requests %d, errors %d, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
