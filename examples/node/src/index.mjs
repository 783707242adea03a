// Answers how long ago `since` (epoch milliseconds) was, in words.
import ms from "ms";

export const handler = async (event) => {
  const since = Number(event?.since ?? Date.now());
  return { statusCode: 200, body: JSON.stringify({ ago: ms(Date.now() - since, { long: true }) }) };
};
