// Run once by the mongo image on first start (docker-entrypoint-initdb.d): Hydra's own user,
// with rights on its database only. The password comes from HYDRA_MONGO_PASSWORD.
const hydra = db.getSiblingDB("hydra");
if (!hydra.getUser("hydra")) {
  hydra.createUser({
    user: "hydra",
    pwd: process.env.HYDRA_MONGO_PASSWORD,
    roles: [{ role: "readWrite", db: "hydra" }, { role: "dbAdmin", db: "hydra" }],
  });
}
