// The {{name}} function: Lambda calls the exported `handler`.
export const handler = async (event) => {
  const name = event?.name ?? "world";
  return {
    statusCode: 200,
    body: JSON.stringify({ message: `hello, ${name}` }),
  };
};
