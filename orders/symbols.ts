/**
 * The symbols Blotter knows by name, with their asset class and reference price (mutual funds:
 * their NAV): what the ticket suggests and what the built-in venue trades. One list for both, so
 * the ticket never offers a symbol the simulator cannot work.
 */
import type { AssetClass } from "./model.ts";

/** Each known symbol's asset class and reference price (an exact decimal string). */
export const SYMBOLS: Readonly<Record<string, { assetClass: AssetClass; price: string }>> = {
  AAPL: { assetClass: "stock", price: "187.50" },
  MSFT: { assetClass: "stock", price: "415.20" },
  TSLA: { assetClass: "stock", price: "242.10" },
  NVDA: { assetClass: "stock", price: "121.40" },
  SPY: { assetClass: "etf", price: "560.30" },
  VOO: { assetClass: "etf", price: "515.60" },
  QQQ: { assetClass: "etf", price: "480.25" },
  VFIAX: { assetClass: "mutual_fund", price: "512.34" },
  FXAIX: { assetClass: "mutual_fund", price: "198.76" },
  "BTC-USD": { assetClass: "crypto", price: "67250.00" },
  "ETH-USD": { assetClass: "crypto", price: "3450.50" },
  "SOL-USD": { assetClass: "crypto", price: "152.30" },
};
