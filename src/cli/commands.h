#pragma once
// One function per `gng` subcommand; each gets the arguments after its name and returns the exit
// code. Errors a user can cause are thrown as gng::Error and printed by main().
#include <string>
#include <vector>

namespace gng::cli {

int solve(const std::vector<std::string>& args);
int qaoa(const std::vector<std::string>& args);
int search(const std::vector<std::string>& args);
int run(const std::vector<std::string>& args);
int approve(const std::vector<std::string>& args);
int status(const std::vector<std::string>& args);
int nodes(const std::vector<std::string>& args);
int node(const std::vector<std::string>& args);
int kme(const std::vector<std::string>& args);
int pki(const std::vector<std::string>& args);
int qkd(const std::vector<std::string>& args);
int audit(const std::vector<std::string>& args);
int doctor(const std::vector<std::string>& args);
int serve(const std::vector<std::string>& args);

}  // namespace gng::cli
